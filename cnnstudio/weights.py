"""State-dict files: reading weights into a model (all of them or none, with every key that does
not fit listed) and the state dict as plain tensors for writing.

Nothing is unpickled beyond tensors: safetensors, or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnstudio.errors import WeightsError

MAX_LISTED = 10  # lines of a weights mismatch listed before "and N more"


def state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as separate contiguous CPU tensors (safetensors refuses shared storage)."""
    seen: set[int] = set()
    tensors = {}
    for key, value in model.state_dict().items():
        tensor = value.detach().cpu().contiguous()
        if tensor.data_ptr() in seen and tensor.numel():
            tensor = tensor.clone()
        seen.add(tensor.data_ptr())
        tensors[key] = tensor
    return tensors


def load_weights(model: nn.Module, path: Path | str) -> None:
    """Load the weights in ``path`` (.safetensors, or a state dict saved with ``torch.save``, also
    inside a checkpoint's "model" or "state_dict") into ``model``, all of them or none.

    Nothing is unpickled beyond tensors (``weights_only=True``). WeightsError listing the missing
    keys, unexpected keys and shape mismatches when the weights do not fit.
    """
    path = Path(path)
    state = read_state(path)
    problems = mismatches(model.state_dict(), state)
    if problems:
        shown = problems[:MAX_LISTED]
        more = len(problems) - len(shown)
        lines = [f"  {p}" for p in shown] + ([f"  and {more} more"] if more else [])
        raise WeightsError(
            f"the weights in {path} do not fit the model ({len(problems)} problems):\n"
            + "\n".join(lines)
        )
    model.load_state_dict(state, strict=True)


def read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise WeightsError(f"cannot read {path} as safetensors: {error}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # an UnpicklingError names what was refused
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(
            f"cannot read weights from {path}: only tensors are loaded, never code ({first})"
        ) from None
    if isinstance(state, dict):
        for key in ("model", "state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsError(f"{path} holds no state dict (a mapping of names to tensors)")
    return state


def mismatches(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> list[str]:
    def dims(t: torch.Tensor) -> str:
        return "×".join(str(v) for v in t.shape) or "scalar"

    problems = [f"missing: {k}" for k in expected if k not in found]
    problems += [f"unexpected: {k}" for k in found if k not in expected]
    problems += [
        f"{k}: file {dims(found[k])}, model {dims(v)}"
        for k, v in expected.items()
        if k in found and found[k].shape != v.shape
    ]
    return problems
