"""The backbone chooser's "open as an editable graph": a torchvision network traced into the
editor's layers on a pool thread (progress, cancel), replacing the model in one undo step, its
ImageNet weights (from torch's cache only) written as the project's starting run when saved."""

from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import Qt

from cnnstudio import build_model
from cnnstudio.fx_import import open_torchvision
from cnnstudio.model_source import from_run
from cnnstudio.progress import TaskState
from cnnstudio.runs import list_runs


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def test_weights_in_the_cache_are_the_starting_weights(cached_weights, no_network) -> None:
    written = cached_weights("squeezenet1_1")
    reports = []
    opened = open_torchvision(TaskState(on_progress=reports.append), "squeezenet1_1")
    assert opened.pretrained and opened.weights == "ImageNet (DEFAULT)"
    assert opened.mean == (0.485, 0.456, 0.406) and opened.std == (0.229, 0.224, 0.225)
    spec = opened.imported.spec
    assert spec.input_shape == (3, 224, 224) and spec.num_classes == 1000
    assert [r.done for r in reports] == [0, 1, 3]
    total = sum(v.numel() for k, v in written.items() if "running" not in k and "num_b" not in k)
    model = build_model(spec)
    model.load_state_dict(opened.imported.state_dict, strict=True)
    assert sum(p.numel() for p in model.parameters()) == total
    from torchvision.models import squeezenet1_1

    original = squeezenet1_1()
    original.load_state_dict(written)
    x = torch.randn(1, 3, 224, 224)
    assert (_outputs(model, x) - _outputs(original, x)).abs().max().item() <= 1e-5


def test_without_cached_weights_it_opens_with_random_ones_and_downloads_nothing(
    no_network,
) -> None:
    opened = open_torchvision(TaskState(), "squeezenet1_1")
    assert not opened.pretrained and opened.weights == "random"
    assert len(opened.imported.spec.nodes) == 66


@pytest.mark.slow
def test_googlenet_weights_take_images_normalised_as_its_input_transform_did(no_network) -> None:
    """torchvision's GoogLeNet with ImageNet weights turns ImageNet-normalised images into ones
    normalised with 0.5 first; the graph leaves that out and says its input takes 0.5."""
    from torchvision.models import googlenet

    from cnnstudio.backbones import weights_path

    torch.manual_seed(0)  # with its aux heads, as torchvision's file holds them
    written = googlenet(aux_logits=True, init_weights=False).state_dict()
    weights_path("googlenet").parent.mkdir(parents=True, exist_ok=True)
    torch.save(written, weights_path("googlenet"))
    opened = open_torchvision(TaskState(), "googlenet")
    assert opened.pretrained and opened.mean == (0.5,) * 3 and opened.std == (0.5,) * 3
    model = build_model(opened.imported.spec)
    model.load_state_dict(opened.imported.state_dict, strict=True)
    original = googlenet(aux_logits=False, transform_input=True, init_weights=False)
    original.load_state_dict({k: v for k, v in written.items() if not k.startswith("aux")})
    raw = torch.rand(1, 3, 224, 224)
    imagenet = torch.tensor((0.485, 0.456, 0.406)), torch.tensor((0.229, 0.224, 0.225))
    theirs = _outputs(original, (raw - imagenet[0][:, None, None]) / imagenet[1][:, None, None])
    assert (_outputs(model, (raw - 0.5) / 0.5) - theirs).abs().max().item() <= 1e-4


# The window


def _dialog_on(qtbot, window, name: str):
    from ui.editor.backbone_dialog import BackboneDialog

    dialog = BackboneDialog(window)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: bool(dialog.rows), timeout=60000)
    names = [dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount())]
    dialog.table.selectRow(names.index(name))
    return dialog


def test_open_as_graph_replaces_the_model_in_one_step_and_saves_a_starting_run(
    qtbot, window, cached_weights, no_network, tmp_path
) -> None:
    written = cached_weights("squeezenet1_1")
    dialog = _dialog_on(qtbot, window, "squeezenet1_1")
    assert "replace the whole current model" in dialog.graph_note.text()
    with qtbot.waitSignal(dialog.accepted, timeout=60000):
        qtbot.mouseClick(dialog.graph_button, Qt.MouseButton.LeftButton)
        assert dialog.opening() and dialog.progress.isVisible()
        dialog.grab().save("/tmp/clip-dialog.png")
    assert dialog.opened.source == "torchvision:squeezenet1_1"
    before, steps = window.document.spec, window.document.undo_stack.count()
    window.open_as_graph(dialog.opened)
    assert window.document.spec == dialog.opened.imported.spec and window.document.dirty
    assert window.document.undo_stack.count() == steps + 1
    assert "squeezenet1_1" in window.statusBar().currentMessage()
    window.document.undo_stack.undo()
    assert window.document.spec == before and window.document.starting_weights is None
    window.document.undo_stack.redo()
    window.document.save(tmp_path / "p")
    (run,) = list_runs(window.document.project.runs_dir)
    from torchvision.models import squeezenet1_1

    original = squeezenet1_1()
    original.load_state_dict(written)
    source = from_run(run.folder)
    x = torch.randn(1, 3, 224, 224)
    assert (_outputs(source.model, x) - _outputs(original, x)).abs().max().item() <= 1e-5
    assert tuple(source.mean) == (0.485, 0.456, 0.406)
    window.document.undo_stack.undo()
    window.document.undo_stack.redo()  # the same weights are not written twice
    window.document.save()
    assert len(list_runs(window.document.project.runs_dir)) == 1


def test_cancel_stops_the_opening_and_keeps_the_dialog(qtbot, window, no_network) -> None:
    dialog = _dialog_on(qtbot, window, "squeezenet1_1")
    qtbot.mouseClick(dialog.graph_button, Qt.MouseButton.LeftButton)
    dialog.reject()
    assert dialog.isVisible() and not dialog.opening() and dialog.opened is None
    assert dialog.note.text() == "Opening squeezenet1_1 cancelled."
    assert dialog.graph_button.isEnabled()
    dialog.reject()
    assert not dialog.isVisible()


@pytest.mark.slow
def test_a_network_the_tracer_cannot_represent_is_one_line_in_the_dialog(
    qtbot, window, no_network
) -> None:
    dialog = _dialog_on(qtbot, window, "convnext_tiny")
    with qtbot.waitSignal(dialog.open_failed, timeout=120000):
        qtbot.mouseClick(dialog.graph_button, Qt.MouseButton.LeftButton)
    assert dialog.note.text().startswith(
        "Cannot open convnext_tiny as a graph: torchvision:convnext_tiny: node permute"
    )
    assert dialog.isVisible() and dialog.graph_button.isEnabled() and dialog.opened is None


def test_the_model_menus_chooser_opens_the_graph_it_returns(
    qtbot, window, monkeypatch, tmp_path
) -> None:
    """Model > Choose Backbone…: a network the dialog opened as a graph replaces the model; the
    weights written at the save are the network's as opened, though the model changed since."""
    from torch import nn

    from cnnstudio.fx_import import OpenedNetwork, import_module
    from ui.editor.backbone_dialog import BackboneDialog
    from ui.editor.commands import SetParamCommand

    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    opened = OpenedNetwork(
        import_module(module, (3, 8, 8), "tiny"), "tiny", False, (0.5,) * 3, (0.25,) * 3
    )

    def chosen(dialog) -> int:  # what exec() ends with when the opening finished
        dialog.opened = opened
        dialog.done(1)
        return 1

    monkeypatch.setattr(BackboneDialog, "exec", chosen)
    window.choose_backbone()
    assert window.document.spec == opened.imported.spec
    window.document.push(SetParamCommand(window.document, "layer_2", "out_features", 5))
    window.document.save(tmp_path / "p")
    (run,) = list_runs(window.document.project.runs_dir)
    source = from_run(run.folder)
    x = torch.randn(2, 3, 8, 8)
    assert (_outputs(source.model, x) - _outputs(module, x)).abs().max().item() == 0
    assert tuple(source.std) == (0.25,) * 3
