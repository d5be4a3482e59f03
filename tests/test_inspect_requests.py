"""The Inspect view's request bookkeeping (ui.inspector.requests), without Qt: no application, no
view, no thread. The answers are real inspections of a small untrained model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnstudio import build_model, create_model_spec
from cnnstudio.errors import InspectError
from cnnstudio.model_source import ModelSource
from cnnstudio.progress import quiet
from ui.inspector.requests import InspectRequests, answer, resolve_source


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (20, 24, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def model_source() -> ModelSource:
    torch.manual_seed(0)
    model = build_model(create_model_spec("simple-cnn")).eval()
    classes = tuple(f"class {i}" for i in range(10))
    return ModelSource(model=model, input_shape=(3, 32, 32), mean=(0.5,) * 3, std=(0.25,) * 3,
                       classes=classes, label="simple-cnn")  # fmt: skip


@pytest.fixture
def loads() -> list[int]:
    """How often the source function below was called (a checkpoint loaded)."""
    return []


def loader(model_source: ModelSource, loads: list[int]):
    def load() -> ModelSource:
        loads.append(1)
        return model_source

    return load


def test_only_the_answer_to_the_newest_request_is_taken(model_source: ModelSource) -> None:
    requests = InspectRequests()
    requests.set_source(model_source)
    first = requests.ask(image(1), None, None)
    second = requests.ask(image(2), "conv1", 3)
    assert (first.number, second.number) == (1, 2) and requests.in_flight
    assert (second.layer, second.target) == ("conv1", 3)
    assert not requests.take(answer(quiet(), first)), "a replaced request's answer was taken"
    assert requests.in_flight and requests.image is None
    reply = answer(quiet(), second)
    assert requests.take(reply)
    assert not requests.in_flight and requests.image is second.image
    assert reply.inspection.target == 3 and reply.source is model_source


def test_a_source_function_is_called_once_per_source(model_source, loads) -> None:
    requests = InspectRequests()
    requests.set_source(loader(model_source, loads))
    assert requests.take(answer(quiet(), requests.ask(image(1), None, None)))
    assert requests.resolved is model_source
    later = requests.ask(image(2), None, None)
    assert later.resolved is model_source
    assert requests.take(answer(quiet(), later))
    assert loads == [1], "the checkpoint was loaded again for the same source"
    requests.set_source(loader(model_source, loads))
    assert requests.resolved is None
    assert requests.take(answer(quiet(), requests.ask(image(3), None, None)))
    assert loads == [1, 1]


def test_a_new_source_reinspects_the_image_shown_or_the_one_on_its_way(model_source) -> None:
    requests = InspectRequests()
    assert requests.set_source(model_source) is None  # nothing shown yet: nothing to redo
    shown = requests.ask(image(1), None, None)
    requests.take(answer(quiet(), shown))
    assert requests.set_source(model_source) is shown.image
    coming = requests.ask(image(2), None, None)
    assert requests.set_source(model_source) is coming.image


def test_an_answer_with_a_replaced_source_does_not_become_the_resolved_one(model_source) -> None:
    requests = InspectRequests()
    requests.set_source(model_source)
    request = requests.ask(image(1), None, None)
    requests.set_source(lambda: model_source)
    assert requests.take(answer(quiet(), request))
    assert requests.resolved is None


def test_a_failure_keeps_the_image_shown(model_source) -> None:
    requests = InspectRequests()
    requests.set_source(model_source)
    shown = requests.ask(image(1), None, None)
    requests.take(answer(quiet(), shown))
    failed = requests.ask("missing.png", None, None)
    with pytest.raises(InspectError):
        answer(quiet(), failed)
    requests.fail()
    assert not requests.in_flight and requests.image is shown.image


def test_no_model_is_an_error_that_says_what_to_do() -> None:
    requests = InspectRequests()
    with pytest.raises(InspectError, match="no model to inspect yet: train one"):
        answer(quiet(), requests.ask(image(1), None, None))
    with pytest.raises(InspectError):
        resolve_source(lambda: None)
