"""Training in the window: the worker thread around the engine's Trainer, and the Train view."""
