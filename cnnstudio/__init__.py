"""CNN Studio's engine: design, analyse, build, train and inspect convolutional networks.

Plain Python and torch; nothing here imports Qt. Scripts, benchmarks and tests use these names.
Importing the package does not import torch: the project model, the catalogue and the analysis are
plain Python (the window shows and edits before torch has loaded, see ``ui.engine``), and
``build_model`` is imported on first use (PEP 562).
"""

from __future__ import annotations

from cnnstudio.analysis import Analysis, LayerInfo, SpecIssue, analyze
from cnnstudio.errors import ModelError, ProjectError, StudioError, WeightsError
from cnnstudio.layers import get_layer_kind, list_layer_kinds
from cnnstudio.project import Project, load_project, new_project
from cnnstudio.spec import ModelSpec, Node
from cnnstudio.templates import create_model_spec, get_template, list_templates

__version__ = "0.1.0"

_LAZY = {"build_model": "cnnstudio.build"}
"""Names whose modules import torch: imported when first asked for, not with the package."""


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # asked once
        return value
    raise AttributeError(f"module 'cnnstudio' has no attribute {name!r}")


__all__ = [
    "Analysis",
    "LayerInfo",
    "ModelError",
    "ModelSpec",
    "Node",
    "Project",
    "ProjectError",
    "SpecIssue",
    "StudioError",
    "WeightsError",
    "analyze",
    "build_model",
    "create_model_spec",
    "get_layer_kind",
    "get_template",
    "list_layer_kinds",
    "list_templates",
    "load_project",
    "new_project",
]
