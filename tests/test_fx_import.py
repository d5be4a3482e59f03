"""Any PyTorch model opened for editing: traced with torch.fx, built back, the same outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnstudio import analyze, build_model
from cnnstudio.cli import main
from cnnstudio.errors import StudioError
from cnnstudio.fx_import import import_module, load_model
from cnnstudio.model_source import from_run
from cnnstudio.project import load_project
from cnnstudio.runs import list_runs
from tests.helpers import spec_of


class TinySE(nn.Module):
    """The functional spellings: SE gate (mean keepdim, Hardsigmoid, *), F.relu, +, torch.cat,
    view(x.size(0), -1), a module called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.Hardswish()
        self.squeeze = nn.Conv2d(8, 8, 1)
        self.gate = nn.Hardsigmoid()
        self.branch = nn.Conv2d(8, 8, 1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x)))
        s = self.gate(self.squeeze(x.mean((2, 3), keepdim=True)))
        x = F.relu(x * s)
        y = self.act(self.branch(x)) + x
        x = self.pool(torch.cat([x, y], 1))
        return self.fc(x.view(x.size(0), -1))


class Rolls(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(self.conv(x), 1, 2).flatten(1)


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.conv(self.conv(x)), 1)


def tiny_se() -> nn.Module:
    """The factory the command line imports (seeded: the test makes the same weights again)."""
    torch.manual_seed(0)
    return TinySE()


def _same_model(
    original: nn.Module, imported, input_shape, batch: int = 2, left_out: int = 0
) -> float:
    """Max abs difference of the studio's model (weights loaded strictly) and the original,
    whose parameters it has all but ``left_out`` of (heads that evaluation does not use)."""
    model = build_model(imported.spec).eval()
    model.load_state_dict(imported.state_dict, strict=True)
    assert sum(p.numel() for p in model.parameters()) == (
        sum(p.numel() for p in original.parameters()) - left_out
    )
    x = torch.randn(batch, *input_shape)
    with torch.no_grad():
        return (model(x) - original.eval()(x)).abs().max().item()


def test_functional_ops_become_catalogue_layers_with_the_same_outputs() -> None:
    original = tiny_se()
    with torch.no_grad():  # running statistics that are not the identity
        original.bn.running_mean.uniform_(-1, 1)
        original.bn.running_var.uniform_(0.5, 2)
    imported = import_module(original, (3, 8, 8), "tiny")
    kinds = [n.kind for n in imported.spec.nodes]
    assert {"Mul", "Add", "Concat", "Hardsigmoid", "Hardswish", "Flatten"} <= set(kinds)
    assert kinds.count("AdaptiveAvgPool2d") == 1 and imported.spec.num_classes == 5
    ids = [n.id for n in imported.spec.nodes]
    assert "conv" in ids and "act_1" in ids  # module path ids; a reused activation numbered
    assert _same_model(original, imported, (3, 8, 8)) <= 1e-5


class FunctionalPools(nn.Module):
    """The pooling functions, positional and keyword (as the PyTorch tutorial's Net and
    Inception v3's blocks call them)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        x = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        x = F.max_pool2d(x, 3, 2, 1, 1, True)
        return self.fc(torch.flatten(x, 1))


def test_functional_pools_become_pooling_layers_with_the_same_outputs() -> None:
    original = FunctionalPools()
    imported = import_module(original, (3, 16, 16), "pools")
    pools = [(n.kind, n.params) for n in imported.spec.nodes if "Pool" in n.kind]
    assert pools == [
        ("MaxPool2d", {"kernel_size": 2, "stride": 2, "padding": 0, "ceil_mode": False}),
        ("AvgPool2d", {"kernel_size": 3, "stride": 1, "padding": 1, "ceil_mode": False}),
        ("MaxPool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ]
    assert _same_model(original, imported, (3, 16, 16)) <= 1e-5


def test_an_op_outside_the_catalogue_is_named_with_its_node() -> None:
    with pytest.raises(StudioError) as caught:
        import_module(Rolls(), (3, 8, 8), "mine:Rolls")
    assert str(caught.value) == (
        "mine:Rolls: node roll: call_function torch.roll is not in the catalogue"
    )


class Branches(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # control flow on values: torch.fx cannot trace it
            return x
        return F.avg_pool2d(x, 2)


def test_what_cannot_be_traced_or_mapped_is_one_line() -> None:
    with pytest.raises(StudioError, match=r"^b: torch.fx cannot trace the model: [^\n]+$"):
        import_module(Branches(), (3, 8, 8), "b")
    pooled = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, (1, 3)))
    with pytest.raises(
        StudioError, match=r"^s: node _1: Conv2d kernel_size \(1, 3\) is not square$"
    ):
        import_module(pooled, (3, 8, 8), "s")


def test_ids_are_layer_ids_whatever_fx_names_the_nodes() -> None:
    """A Sequential's modules are fx nodes _0, _1; output_id is an attribute of the built model."""
    original = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    original.add_module("output_id", nn.Linear(4 * 6 * 6, 3))
    imported = import_module(original, (3, 8, 8), "seq")
    assert [n.id for n in imported.spec.nodes] == ["layer_0", "layer_1", "output_id_1"]
    assert _same_model(original, imported, (3, 8, 8)) <= 1e-5


def test_a_module_called_twice_with_weights_is_refused() -> None:
    with pytest.raises(StudioError, match="node conv_1: conv is used twice"):
        import_module(Shared(), (3, 8, 8), "shared")


def test_mul_broadcasts_a_channel_gate_and_refuses_other_shapes() -> None:
    gate = ("g", "AdaptiveAvgPool2d", {"output_size": 1}, ["input"])
    spec = spec_of(gate, ("m", "Mul", {}, ["input", "g"]), input_shape=(3, 8, 8))
    assert analyze(spec).layer("m").output_shape == (3, 8, 8)
    pooled = ("p", "MaxPool2d", {"kernel_size": 2}, ["input"])
    bad = analyze(spec_of(pooled, ("m", "Mul", {}, ["input", "p"]), input_shape=(3, 8, 8)))
    assert not bad.valid
    assert "Mul needs inputs of one shape, or sizes of 1" in str(bad.errors[0])


def test_new_from_model_makes_the_graph_and_an_imported_run(tmp_path, capsys) -> None:
    folder = tmp_path / "p"
    code = main(
        ["new", str(folder), "--from-model", "tests.test_fx_import:tiny_se", "--input", "3,8,8"]
    )
    assert code == 0, capsys.readouterr().err
    assert "tests.test_fx_import:tiny_se" in capsys.readouterr().out
    project = load_project(folder)
    assert project.model.num_classes == 5
    (run,) = list_runs(project.runs_dir)
    source = from_run(run.folder)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert (source.model.eval()(x) - tiny_se().eval()(x)).abs().max().item() <= 1e-5


def test_new_from_model_refuses_a_bad_source_in_one_line(tmp_path, capsys) -> None:
    assert main(["new", str(tmp_path / "p"), "--from-model", "resnet18"]) == 2
    err = capsys.readouterr().err.strip()
    assert "torchvision:NAME or package.module:ClassOrFactory" in err and "\n" not in err
    assert not (tmp_path / "p").exists()
    source = ["--from-model", "torchvision:resnet18"]
    assert main(["new", str(tmp_path / "p"), *source, "--weights", "NOPE"]) == 2
    assert "unknown --weights 'NOPE' (DEFAULT, or" in capsys.readouterr().err
    assert main(["new", str(tmp_path / "p"), "--from-model", "nosuch_module_x:Net"]) == 2
    assert "No module named 'nosuch_module_x'" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


# The smallest images they take, near enough (AlexNet's pools need 64×64).
SUPPORTED = {
    "resnet18": 32,
    "resnet50": 32,
    "mobilenet_v2": 32,
    "mobilenet_v3_small": 32,
    "efficientnet_b0": 32,
    "squeezenet1_1": 32,
    "densenet121": 32,
    "vgg11": 32,
    "alexnet": 64,
    "regnet_y_400mf": 32,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", SUPPORTED)
def test_torchvision_model_imports_with_the_same_outputs(name: str) -> None:
    original = load_model(f"torchvision:{name}")
    shape = (3, SUPPORTED[name], SUPPORTED[name])
    imported = import_module(original, shape, f"torchvision:{name}")
    assert imported.spec.num_classes == 1000
    assert _same_model(original, imported, shape) <= 1e-5


@pytest.mark.slow
def test_googlenet_imports_without_its_auxiliary_classifiers() -> None:
    """In evaluation GoogLeNet does not run its aux heads: the graph leaves them (and their
    weights) out and gives the same outputs with the parameters less theirs."""
    from torchvision.models import googlenet

    torch.manual_seed(0)
    original = googlenet(aux_logits=True, init_weights=False)
    aux = sum(p.numel() for n, p in original.named_parameters() if n.startswith(("aux1", "aux2")))
    assert aux > 6_000_000
    imported = import_module(original, (3, 64, 64), "torchvision:googlenet")
    assert imported.spec.num_classes == 1000
    assert not any(key.startswith("aux") for key in imported.state_dict)
    assert _same_model(original, imported, (3, 64, 64), left_out=aux) <= 1e-5


@pytest.mark.slow
def test_shufflenet_channel_shuffle_is_refused_in_one_line() -> None:
    with pytest.raises(StudioError, match=r"^torchvision:shufflenet_v2_x0_5: node size: "):
        import_module(
            load_model("torchvision:shufflenet_v2_x0_5"),
            (3, 64, 64),
            "torchvision:shufflenet_v2_x0_5",
        )


@pytest.mark.slow
def test_imported_run_exports_as_python_code(tmp_path) -> None:
    """Mul and the new activations have code: the written model is checked against the run."""
    from cnnstudio.export import export

    folder = tmp_path / "p"
    args = ["new", str(folder), "--from-model", "tests.test_fx_import:tiny_se", "--input", "3,8,8"]
    assert main(args) == 0
    (run,) = list_runs(load_project(folder).runs_dir)
    result = export(from_run(run.folder), "python", tmp_path / "model.py")
    code = (tmp_path / "model.py").read_text()
    assert " * " in code and "nn.Hardsigmoid()" in code and "nn.Hardswish()" in code
    assert result.max_abs_diff <= 1e-5
