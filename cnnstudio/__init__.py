"""CNN Studio's engine: design, analyse, build, train and inspect convolutional networks.

Plain Python and torch; nothing here imports Qt. Scripts, benchmarks and tests use these names.
"""

from __future__ import annotations

from cnnstudio.analysis import Analysis, LayerInfo, SpecIssue, analyze
from cnnstudio.build import build_model
from cnnstudio.errors import ModelError, ProjectError, StudioError, WeightsError
from cnnstudio.layers import get_layer_kind, list_layer_kinds
from cnnstudio.project import Project, load_project, new_project
from cnnstudio.spec import ModelSpec, Node
from cnnstudio.templates import create_model_spec, get_template, list_templates

__version__ = "0.1.0"

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
