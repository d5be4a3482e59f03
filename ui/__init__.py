"""CNN Studio's Qt views. They edit the Project and draw what the engine (cnnstudio) reports."""
