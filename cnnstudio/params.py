"""Settings described as data: a name, a type, a default, the allowed values and one line of help.

Layer parameters (the catalogue), data settings and training settings are all described this way,
so the forms that edit them and the checks that validate them are generated from one place.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from dataclasses import dataclass
from typing import Any

from cnnstudio.errors import ProjectError

PARAM_TYPES = ("int", "float", "bool", "choice", "text")

AUTO = "auto"


@dataclass(frozen=True)
class Param:
    """One setting: of a layer kind, of the data or of training.

    ``words`` are text values accepted besides numbers (``"auto"``, ``"same"``); ``required``
    parameters must be written in a spec, the others fall back to ``default``. ``default`` is also
    the value a newly placed layer starts with. A "text" setting must match ``pattern``, described
    to the user by ``choices`` (examples).
    """

    name: str
    type: str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    required: bool = False
    pattern: str = ""

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"{self.name}: unknown parameter type {self.type!r}")
        if self.check(self.default) is not None:
            raise ValueError(f"{self.name}: default {self.default!r} is not allowed")

    @property
    def allows_auto(self) -> bool:
        return AUTO in self.words

    def describe(self) -> str:
        """What values are allowed, as a phrase: "an integer from 1 to 64, or 'auto'"."""
        if self.type == "bool":
            text = "true or false"
        elif self.type == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.type == "text":
            text = "text such as " + ", ".join(repr(c) for c in self.choices)
        else:
            noun = "an integer" if self.type == "int" else "a number"
            text = noun + _range_phrase(self.minimum, self.maximum, self.type)
        if self.words:
            text += ", or " + " or ".join(repr(w) for w in self.words)
        return text

    def check(self, value: Any) -> str | None:
        """None when ``value`` is allowed, else the reason it is not (without the layer's name)."""
        if isinstance(value, str) and value in self.words:
            return None
        ok_type = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float))
            and not isinstance(value, bool)
            and _finite(value),
            "bool": isinstance(value, bool),
            "choice": isinstance(value, str) and value in self.choices,
            "text": isinstance(value, str) and re.fullmatch(self.pattern, value) is not None,
        }[self.type]
        if not ok_type:
            return f"must be {self.describe()}, got {show_value(value)}"
        if self.type in ("int", "float"):
            if self.minimum is not None and value < self.minimum:
                return f"must be {self.describe()}, got {show_value(value)}"
            if self.maximum is not None and value > self.maximum:
                return f"must be {self.describe()}, got {show_value(value)}"
        return None


def _finite(value: int | float) -> bool:
    """Whether ``value`` is a number a float can hold: an integer of 400 digits is not, and
    ``math.isfinite`` raises OverflowError on it instead of saying so."""
    if isinstance(value, int):
        return abs(value) <= sys.float_info.max
    return math.isfinite(value)


def _range_phrase(minimum: float | None, maximum: float | None, type_: str) -> str:
    def fmt(v: float) -> str:
        return str(int(v)) if type_ == "int" else f"{v:g}"

    if minimum is not None and maximum is not None:
        return f" from {fmt(minimum)} to {fmt(maximum)}"
    if minimum is not None:
        return f" of at least {fmt(minimum)}"
    if maximum is not None:
        return f" of at most {fmt(maximum)}"
    return ""


def show_value(value: Any) -> str:
    if isinstance(value, str):
        return f"{value!r} (text)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return f"{type(value).__name__} {value!r}"[:60]
    if isinstance(value, int) and abs(value) >= 10**20:
        # a 400-digit number is no help in a message, and past 4,300 digits repr() raises
        digits = len(str(abs(value))) if abs(value).bit_length() < 14_000 else "thousands of"
        return f"a{' negative' if value < 0 else 'n'} integer of {digits} digits"
    return repr(value)


def format_rate(value: float, digits: int = 3) -> str:
    """A learning rate (or a weight decay) as people write it, with at most ``digits``
    significant digits: 3e-4, 1.25e-3, 0.01, 0.3, 10. Never "0.000000": the small values these
    settings take get an exponent."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if 1e-2 <= abs(value) < 1e4:
        return f"{value:.{digits}g}"
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def human(value: float, binary: bool = False) -> str:
    """1234567 -> '1.23 M' (or '1.18 Mi' with binary=True)."""
    base = 1024.0 if binary else 1000.0
    units = ("", " Ki", " Mi", " Gi", " Ti") if binary else ("", " K", " M", " G", " T")
    for unit in units:
        if abs(value) < base or unit == units[-1]:
            return f"{value:.0f}{unit}" if unit == "" else f"{value:.2f}{unit}"
        value /= base
    return str(value)


def format_bytes(count: float) -> str:
    """A size in bytes, the one way the studio writes sizes (window and command line alike): binary
    units with their IEC names, 512 B, 8.29 MiB, 1.50 GiB."""
    text = human(count, binary=True)
    return f"{text} B" if text[-1].isdigit() else f"{text}B"


def close_name(name: str, names: tuple[str, ...] | list[str]) -> str | None:
    """The nearest of ``names`` to a misspelt ``name``, for "did you mean" hints."""
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return close[0] if close else None


def check_settings(params: tuple[Param, ...], values: Any, where: str) -> dict[str, Any]:
    """``values`` (a settings object from a project file) checked against ``params``, with defaults
    filled in. ProjectError naming ``where.<name>`` for the first problem."""
    if not isinstance(values, dict):
        found = "null" if values is None else type(values).__name__
        raise ProjectError(None, f"must be an object, got {found}", where)
    names = tuple(p.name for p in params)
    for key in values:
        if key not in names:
            hint = close_name(str(key), names)
            fix = f" (did you mean {hint!r}?)" if hint else f" (known: {', '.join(names)})"
            raise ProjectError(None, f"unknown setting {key!r}{fix}", where)
    checked = {}
    for param in params:
        value = values.get(param.name, param.default)
        reason = param.check(value)
        if reason:
            raise ProjectError(None, reason, f"{where}.{param.name}")
        checked[param.name] = value
    return checked
