"""Inspection requests, apart from the drawing and from Qt: what one asks, the function that answers
it on the pool thread, and which answer the Inspect view is waiting for.

Each request gets a number; only the answer to the newest is taken. The model source the window
hands over (a ModelSource, or a function that loads one) is resolved on the pool thread by the first
request that uses it; its answer brings the resolved source back and later requests reuse it, so a
checkpoint is loaded once per source. A new source re-inspects the image shown, or the one whose
answer is still on its way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnstudio.errors import InspectError
from cnnstudio.inspect import Inspection, inspect_image
from cnnstudio.model_source import ModelSource
from cnnstudio.progress import TaskState


@dataclass(frozen=True)
class Request:
    number: int
    image: Any  # a path or an H×W×C array
    layer: str | None = None
    target: int | None = None
    source: Any = None  # a ModelSource, a function returning one, or None
    resolved: ModelSource | None = None  # ``source`` resolved by an earlier answer
    heat_method: str = "grad-cam"  # cnnstudio.inspect.HEAT_METHODS


@dataclass(frozen=True)
class Answer:
    request: Request
    source: ModelSource  # the request's source, resolved
    inspection: Inspection


def resolve_source(source: Any) -> ModelSource:
    """The ModelSource the window handed over, or the one a function handed over returns (called
    on the pool thread: loading a checkpoint takes time)."""
    value = source() if callable(source) else source
    if value is None:
        raise InspectError("no model to inspect yet: train one, or open a project with a run")
    return value


def answer(_state: TaskState, request: Request) -> Answer:
    """Inspect the request's image with its model (run on the pool thread)."""
    source = request.resolved or resolve_source(request.source)
    inspection = inspect_image(
        source.model,
        request.image,
        source.input_shape,
        source.mean,
        source.std,
        source.classes,
        request.layer,
        target=request.target,
        heat_method=request.heat_method,
    )
    return Answer(request, source, inspection)


class InspectRequests:
    """The Inspect view's requests: the newest one's number, its image and whether its answer is
    still to come, the image of the answer shown, the model source and its resolved form."""

    def __init__(self) -> None:
        self.number = 0
        self.image: Any = None  # the image of the answer shown
        self.pending_image: Any = None  # the image of the newest request
        self.in_flight = False
        self.resolved: ModelSource | None = None
        self._source: Any = None
        self._source_number = 0
        self._asked_source = 0  # the source number of the newest request

    def set_source(self, source: Any) -> Any:
        """Use ``source`` from now on; returns the image to inspect again with it, if any."""
        self._source = source
        self.resolved = None
        self._source_number += 1
        return self.pending_image if self.in_flight else self.image

    def ask(
        self, image: Any, layer: str | None, target: int | None, heat_method: str = "grad-cam"
    ) -> Request:
        """A new request, which replaces any still unanswered."""
        self.number += 1
        self.pending_image = image
        self.in_flight = True
        self._asked_source = self._source_number
        return Request(self.number, image, layer, target, self._source, self.resolved, heat_method)

    def take(self, reply: Answer) -> bool:
        """Record ``reply``; False when a newer request replaced it (then it is not shown)."""
        if reply.request.number != self.number:
            return False
        self.in_flight = False
        if self._asked_source == self._source_number:  # not a source replaced meanwhile
            self.resolved = reply.source
        self.image = self.pending_image
        return True

    def fail(self) -> None:
        """The newest request failed: the answer shown stays."""
        self.in_flight = False
