"""Any PyTorch model opened for editing: traced with torch.fx into a ModelSpec and its weights.

``import_module`` traces an ``nn.Module`` (``torch.fx.symbolic_trace`` semantics) and maps every
graph node onto a catalogue kind: the module calls of catalogue kinds with their exact parameters,
and the functions and methods that have one (``+`` is Add, ``*`` Mul, ``torch.cat`` Concat,
``torch.flatten`` and ``x.view(x.size(0), -1)`` Flatten, ``torch.mean(x, (2, 3))`` global average
pooling, ``F.relu`` ReLU, ``F.max_pool2d`` MaxPool2d, ...). A layer's id is its module path with
dots as underscores (``layer1.0.conv1`` is ``layer1_0_conv1``), so the module's weights become a
state dict keyed as ``build_model(spec)`` names its submodules. torchvision's StochasticDepth
becomes Identity: what it does in evaluation (it only drops residual branches while training).
Auxiliary classifiers that only run while training (GoogLeNet's) are not traced, so left out.
Anything else is a StudioError naming the model, the graph node and the operation.

``open_torchvision`` opens a torchvision classifier with its ImageNet weights from torch's cache:
what the window's backbone chooser runs to open a network as an editable graph.

``load_model`` makes the module from a name: ``torchvision:resnet18`` (random weights: nothing is
downloaded) or ``package.module:ClassOrFactory``, which imports and runs the user's own code: only
for a name given on the command line, never one read from a project.
"""

from __future__ import annotations

import importlib
import operator
import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from cnnstudio.analysis import _reserved_ids, analyze
from cnnstudio.backbones import trained_size, whole_network
from cnnstudio.errors import StudioError
from cnnstudio.progress import TaskState
from cnnstudio.spec import INPUT, ModelSpec, Node

# Modules copied with these attributes as parameters (the catalogue's names, torch's own).
_PLAIN = {
    nn.ReLU: (),
    nn.ReLU6: (),
    nn.SiLU: (),
    nn.Sigmoid: (),
    nn.Tanh: (),
    nn.Hardswish: (),
    nn.Hardsigmoid: (),
    nn.Identity: (),
    nn.GELU: ("approximate",),
    nn.LeakyReLU: ("negative_slope",),
    nn.Dropout: ("p",),
    nn.Dropout2d: ("p",),
    nn.Linear: ("in_features", "out_features"),
}
# Functions and methods with no argument beyond the tensor (in-place flags aside).
_ACTIVATIONS = {
    F.relu: "ReLU",
    torch.relu: "ReLU",
    "relu": "ReLU",
    F.relu6: "ReLU6",
    F.silu: "SiLU",
    F.hardswish: "Hardswish",
    F.hardsigmoid: "Hardsigmoid",
    torch.sigmoid: "Sigmoid",
    F.sigmoid: "Sigmoid",
    "sigmoid": "Sigmoid",
    torch.tanh: "Tanh",
    "tanh": "Tanh",
}
_MERGES = {
    operator.add: "Add",
    operator.iadd: "Add",
    torch.add: "Add",
    "add": "Add",
    operator.mul: "Mul",
    operator.imul: "Mul",
    torch.mul: "Mul",
    "mul": "Mul",
}
# Functional pools: the module they equal and the names of their arguments after the tensor.
_POOLS = {
    F.max_pool2d: (
        nn.MaxPool2d,
        ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    ),
    torch.max_pool2d: (
        nn.MaxPool2d,
        ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    ),
    F.avg_pool2d: (
        nn.AvgPool2d,
        ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    ),
}
# Where a refused function is said to come from: F.avg_pool2d rather than torch._C._nn.
_SPACES = (("F", F), ("torch", torch), ("operator", operator))
_SIZE0 = "<size(0)>"  # the value of x.size(0): only a view(x.size(0), -1) may use it


@dataclass(frozen=True)
class Imported:
    """A traced model: its spec and its weights keyed by the spec's layer ids (the module's own
    tensors, not copies: loading them into a built model copies them)."""

    spec: ModelSpec
    state_dict: dict[str, torch.Tensor]


@dataclass(frozen=True)
class OpenedNetwork:
    """A torchvision network opened for editing (``open_torchvision``): the traced graph and its
    weights, where they came from, and the normalisation its weights take."""

    imported: Imported
    source: str
    pretrained: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def weights(self) -> str:
        """What its weights are, in words: "ImageNet (DEFAULT)" or "random"."""
        return "ImageNet (DEFAULT)" if self.pretrained else "random"


def open_torchvision(state: TaskState, name: str) -> OpenedNetwork:
    """torchvision's classifier ``name`` traced into a spec at the image size it was trained on,
    with its ImageNet weights when they are in torch's cache (random ones otherwise: nothing is
    downloaded). What the window's backbone chooser runs on a pool thread; Cancelled when
    ``state`` is told to stop."""
    state.report(0, 3, f"building {name}")
    network = whole_network(name)
    state.check(f"opening {name}")
    state.report(1, 3, f"tracing {name}")
    size = trained_size(name)
    imported = import_module(network.module, (3, size, size), f"torchvision:{name}")
    state.check(f"opening {name}")
    state.report(3, 3, f"{name} traced")
    return OpenedNetwork(
        imported, f"torchvision:{name}", network.pretrained, network.mean, network.std
    )


class _Tracer(fx.Tracer):
    """torch.fx's tracer, keeping torchvision's StochasticDepth as one call (made Identity)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return type(m).__name__ == "StochasticDepth" or super().is_leaf_module(m, qualname)


def import_module(
    module: nn.Module, input_shape: tuple[int, int, int], name: str = "model"
) -> Imported:
    """``module`` (put in eval mode: what is traced is what it computes there) as a spec (input
    ``input_shape``, classes = its output size) and its weights.

    StudioError "NAME: node N: op TARGET is not in the catalogue" (or what else does not fit)."""
    module = module.eval()
    try:
        graph = _Tracer().trace(module)
    except Exception as error:  # any failure of the forward while tracing
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StudioError(f"{name}: torch.fx cannot trace the model: {first}") from None
    root = fx.GraphModule(module, graph)
    mapper = _Mapper(root, name)
    for fx_node in graph.nodes:
        mapper.add(fx_node)
    nodes = _needed(mapper.nodes, mapper.output)
    if not nodes:
        raise StudioError(f"{name}: the model returns its input: no layers to import")
    spec = ModelSpec(nodes=tuple(nodes), input_shape=tuple(input_shape), num_classes=2)
    out = analyze(spec).layer(nodes[-1].id).output_shape
    if out is not None and len(out) == 1:
        spec = spec.with_shape(spec.input_shape, out[0])
    analysis = analyze(spec)
    if not analysis.valid:
        raise StudioError(
            f"{name}: the imported graph does not fit input "
            f"{'×'.join(map(str, input_shape))}: {analysis.errors[0]}"
        )
    kept = {n.id for n in nodes}
    state = {k: v for k, v in mapper.state.items() if k.split(".", 1)[0] in kept}
    return Imported(spec, state)


class _Mapper:
    """Walks the fx graph in order, turning each node into a spec Node (or an alias of one)."""

    def __init__(self, root: fx.GraphModule, name: str) -> None:
        self.root, self.name = root, name
        self.nodes: list[Node] = []
        self.values: dict[fx.Node, str] = {}
        self.state: dict[str, torch.Tensor] = {}
        self.output: str | None = None
        self.owners: dict[int, str] = {}
        self.taken: set[str] = set()

    def fail(self, fx_node: fx.Node, what: str) -> StudioError:
        return StudioError(f"{self.name}: node {fx_node.name}: {what}")

    def unsupported(self, fx_node: fx.Node) -> StudioError:
        target = fx_node.target
        if fx_node.op == "call_module":
            target = type(self.root.get_submodule(fx_node.target)).__name__
        elif callable(target):
            name = getattr(target, "__name__", str(target))
            home = next(
                (label for label, space in _SPACES if getattr(space, name, None) is target),
                getattr(target, "__module__", None) or "",
            )
            target = f"{home}.{name}".lstrip(".")
        else:
            target = f"Tensor.{target}"
        return self.fail(fx_node, f"{fx_node.op} {target} is not in the catalogue")

    def tensor(self, fx_node: fx.Node, arg: Any) -> str:
        if not isinstance(arg, fx.Node) or arg not in self.values or self.values[arg] == _SIZE0:
            raise self.fail(
                fx_node, f"{fx_node.op} {fx_node.target} takes {arg!r}, not a layer's output"
            )
        return self.values[arg]

    def new_id(self, name: str) -> str:
        """fx's node name as a layer id: a letter first, at most 64 characters, not a name
        torch's nn.Module uses, unique (``_1``, a Sequential's second module, is ``layer_1``)."""
        base = name if name[:1].isalpha() else f"layer{'' if name[:1] == '_' else '_'}{name}"
        base = re.sub(r"[^A-Za-z0-9_]", "_", base)[:58]
        node_id, n = base, 1
        while node_id in self.taken or node_id == INPUT or node_id in _reserved_ids():
            node_id, n = f"{base}_{n}", n + 1
        self.taken.add(node_id)
        return node_id

    def emit(
        self, fx_node: fx.Node, kind: str, params: dict, inputs: list[str], node_id: str = ""
    ) -> None:
        node_id = node_id or self.new_id(fx_node.name)
        self.nodes.append(Node(node_id, kind, params, tuple(inputs)))
        self.values[fx_node] = node_id

    def add(self, fx_node: fx.Node) -> None:
        if fx_node.op == "placeholder":
            if INPUT in self.values.values():
                raise self.fail(fx_node, "the model takes more than one input")
            self.values[fx_node] = INPUT
        elif fx_node.op == "output":
            self.output = self.tensor(fx_node, fx_node.args[0])
        elif fx_node.op == "call_module":
            self.add_module(fx_node)
        elif fx_node.op in ("call_function", "call_method"):
            self.add_function(fx_node)
        else:
            raise self.unsupported(fx_node)

    def add_module(self, fx_node: fx.Node) -> None:
        module = self.root.get_submodule(fx_node.target)
        if fx_node.kwargs or len(fx_node.args) != 1:
            raise self.fail(fx_node, f"{fx_node.target} is called with more than one argument")
        source = self.tensor(fx_node, fx_node.args[0])
        kind, params = _module_params(module, lambda what: self.fail(fx_node, what))
        if kind is None:
            raise self.unsupported(fx_node)
        node_id = self.new_id(fx_node.name)
        if module.state_dict():
            if id(module) in self.owners:
                raise self.fail(
                    fx_node, f"{fx_node.target} is used twice (shared weights are not supported)"
                )
            self.owners[id(module)] = node_id
            for key, value in module.state_dict().items():
                self.state[f"{node_id}.{key}"] = value.detach()
        self.emit(fx_node, kind, params, [source], node_id)

    def add_function(self, fx_node: fx.Node) -> None:
        target, args, kwargs = fx_node.target, fx_node.args, dict(fx_node.kwargs)
        kwargs.pop("inplace", None)
        if target == "size" and args[1:] == (0,) and not kwargs:
            self.tensor(fx_node, args[0])
            self.values[fx_node] = _SIZE0
        elif target in _MERGES:
            if kwargs or len(args) != 2:
                raise self.unsupported(fx_node)
            inputs = [self.tensor(fx_node, a) for a in args]
            self.emit(fx_node, _MERGES[target], {}, inputs)
        elif target in _ACTIVATIONS and len(args) == 1 and not kwargs:
            self.emit(fx_node, _ACTIVATIONS[target], {}, [self.tensor(fx_node, args[0])])
        elif target in (torch.cat, torch.concat):
            dim = kwargs.pop("dim", args[1] if len(args) > 1 else 0)
            if dim != 1 or kwargs or not isinstance(args[0], (list, tuple)):
                raise self.fail(fx_node, f"torch.cat along dim {dim} (Concat joins dim 1)")
            inputs = [self.tensor(fx_node, a) for a in args[0]]
            if len(inputs) == 1:  # cat of one tensor is that tensor (DenseNet's first layer)
                self.values[fx_node] = inputs[0]
            else:
                self.emit(fx_node, "Concat", {}, inputs)
        else:
            self.add_reshape(fx_node, target, args, kwargs)

    def add_reshape(self, fx_node: fx.Node, target: Any, args: tuple, kwargs: dict) -> None:
        """Flatten and global average pooling, in their functional spellings."""
        source = self.tensor(fx_node, args[0]) if args else None
        if target in (torch.flatten, "flatten"):
            start = kwargs.pop("start_dim", args[1] if len(args) > 1 else 0)
            end = kwargs.pop("end_dim", args[2] if len(args) > 2 else -1)
            if (start, end) != (1, -1) or kwargs:
                raise self.fail(fx_node, f"flatten({start}, {end}) (Flatten keeps dim 0)")
            self.emit(fx_node, "Flatten", {}, [source])
        elif target in ("view", "reshape", torch.reshape) and _batch_flat(args, self.values):
            self.emit(fx_node, "Flatten", {}, [source])
        elif target is F.adaptive_avg_pool2d:
            size = kwargs.get("output_size", args[1] if len(args) > 1 else None)
            size = _square(size)
            if size is None:
                raise self.fail(fx_node, f"adaptive_avg_pool2d to {args[1:]} (not square)")
            self.emit(fx_node, "AdaptiveAvgPool2d", {"output_size": size}, [source])
        elif target in (torch.mean, "mean"):
            self.add_mean(fx_node, args, kwargs, source)
        elif callable(target) and target in _POOLS:
            self.add_pool(fx_node, args, kwargs, source)
        else:
            raise self.unsupported(fx_node)

    def add_pool(self, fx_node: fx.Node, args: tuple, kwargs: dict, source: str | None) -> None:
        """``F.max_pool2d`` and ``F.avg_pool2d`` as the catalogue's pooling layers."""
        module_type, names = _POOLS[fx_node.target]
        if len(args) - 1 > len(names) or set(kwargs) - set(names):
            raise self.unsupported(fx_node)
        pool = module_type(**dict(zip(names, args[1:], strict=False)), **kwargs)
        kind, params = _module_params(pool, lambda what: self.fail(fx_node, what))
        self.emit(fx_node, kind, params, [source])

    def add_mean(self, fx_node: fx.Node, args: tuple, kwargs: dict, source: str | None) -> None:
        dims = kwargs.pop("dim", args[1] if len(args) > 1 else None)
        keep = kwargs.pop("keepdim", args[2] if len(args) > 2 else False)
        if sorted(dims or ()) not in ([2, 3], [-2, -1]) or kwargs:
            raise self.fail(fx_node, f"mean over {dims} (only the global mean over (2, 3))")
        if keep:
            self.emit(fx_node, "AdaptiveAvgPool2d", {"output_size": 1}, [source])
            return
        pool_id = self.new_id(f"{fx_node.name}_pool")
        self.nodes.append(Node(pool_id, "AdaptiveAvgPool2d", {"output_size": 1}, (source,)))
        self.emit(fx_node, "Flatten", {}, [pool_id])


def _batch_flat(args: tuple, values: dict) -> bool:
    """``view(x.size(0), -1)``: keeps the batch, flattens the rest."""
    rest = args[1:]
    if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
        rest = tuple(rest[0])
    return len(rest) == 2 and rest[1] == -1 and values.get(rest[0]) == _SIZE0


def _square(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == value[1]:
        return value[0] if isinstance(value[0], int) else None
    return None


def _module_params(module: nn.Module, fail) -> tuple[str | None, dict]:
    """The catalogue kind and parameters of ``module``; (None, {}) when there is none."""
    kind = type(module)
    if kind.__name__ == "StochasticDepth":
        return "Identity", {}
    if kind in _PLAIN:
        params = {name: getattr(module, name) for name in _PLAIN[kind]}
        if kind is nn.Linear:
            params["bias"] = module.bias is not None
        return kind.__name__, params
    if kind is nn.Conv2d:
        return "Conv2d", _conv_params(module, fail)
    if kind in (nn.BatchNorm2d, nn.BatchNorm1d):
        if not (module.affine and module.track_running_stats) or module.momentum is None:
            raise fail(f"{kind.__name__} without affine, running statistics or momentum")
        params = {"num_features": module.num_features, "eps": module.eps}
        return kind.__name__, {**params, "momentum": module.momentum}
    if kind in (nn.MaxPool2d, nn.AvgPool2d):
        return kind.__name__, _pool_params(module, fail)
    if kind is nn.AdaptiveAvgPool2d:
        size = _square(module.output_size)
        if size is None:
            raise fail(f"AdaptiveAvgPool2d to {module.output_size} (not square)")
        return "AdaptiveAvgPool2d", {"output_size": size}
    if kind is nn.Flatten:
        if (module.start_dim, module.end_dim) != (1, -1):
            raise fail(f"Flatten({module.start_dim}, {module.end_dim}) (Flatten keeps dim 0)")
        return "Flatten", {}
    return None, {}


def _conv_params(module: nn.Conv2d, fail) -> dict:
    params: dict[str, Any] = {
        "in_channels": module.in_channels,
        "out_channels": module.out_channels,
    }
    for name in ("kernel_size", "stride", "padding", "dilation"):
        value = getattr(module, name)
        value = value if isinstance(value, str) else _square(value)
        if value is None:
            raise fail(f"Conv2d {name} {getattr(module, name)} is not square")
        params[name] = value
    if module.padding_mode != "zeros":
        raise fail(f"Conv2d padding_mode {module.padding_mode!r} (only zeros)")
    return {**params, "groups": module.groups, "bias": module.bias is not None}


def _pool_params(module: nn.Module, fail) -> dict:
    name = type(module).__name__
    odd = (
        getattr(module, "dilation", 1) not in (1, (1, 1))
        or getattr(module, "return_indices", False)
        or not getattr(module, "count_include_pad", True)
        or getattr(module, "divisor_override", None) is not None
    )
    if odd:
        raise fail(f"{name} with dilation, indices or a divisor (not in the catalogue)")
    params: dict[str, Any] = {}
    for key in ("kernel_size", "stride", "padding"):
        value = _square(getattr(module, key))
        if value is None:
            raise fail(f"{name} {key} {getattr(module, key)} is not square")
        params[key] = value
    return {**params, "ceil_mode": bool(module.ceil_mode)}


def _needed(nodes: list[Node], output: str | None) -> list[Node]:
    """The nodes the output depends on, in graph order (the output last); inputs written out
    only where a layer does not take the one before it."""
    by_id = {n.id: n for n in nodes}
    needed, stack = set(), [output]
    while stack:
        current = stack.pop()
        if current in needed or current in (INPUT, None):
            continue
        needed.add(current)
        stack.extend(by_id[current].inputs)
    kept: list[Node] = []
    for node in nodes:
        if node.id not in needed:
            continue
        previous = kept[-1].id if kept else INPUT
        if len(node.inputs) == 1 and node.inputs[0] == previous:
            node = Node(node.id, node.kind, node.params)
        kept.append(node)
    return kept


def load_model(source: str, weights: str | None = None) -> nn.Module:
    """The module ``source`` names: ``torchvision:NAME`` (``weights`` None: random values, as
    nothing is downloaded here) or ``package.module:ClassOrFactory`` (called with no arguments)."""
    prefix, _, attr = source.partition(":")
    if not attr:
        raise StudioError(
            f"--from-model {source!r}: give torchvision:NAME or package.module:ClassOrFactory"
        )
    if prefix == "torchvision":
        import torchvision

        try:
            return torchvision.models.get_model(attr, weights=weights)
        except KeyError:
            raise StudioError(
                f"--from-model {source}: unknown --weights {weights!r} "
                "(DEFAULT, or torchvision's name such as IMAGENET1K_V1)"
            ) from None
        except Exception as error:  # an unknown name, a failed download
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
            fetch = f" (its weights {weights} cannot be fetched)" if weights else ""
            raise StudioError(f"--from-model {source}{fetch}: {text}") from None
    try:
        factory = getattr(importlib.import_module(prefix), attr)
        model = factory()
    except Exception as error:  # the user's own code: any failure
        raise StudioError(f"--from-model {source}: {type(error).__name__}: {error}") from None
    if not isinstance(model, nn.Module):
        raise StudioError(f"--from-model {source}: made a {type(model).__name__}, not a nn.Module")
    return model
