"""The Inspect view: an image dropped or opened, what the model predicts for it, where it looks
(Grad-CAM), what its layers see (feature maps) and what its convolutions learned (filters)."""

from ui.inspector.view import InspectorView

__all__ = ["InspectorView"]
