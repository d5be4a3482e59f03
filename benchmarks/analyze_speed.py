"""How long analyze() takes on a 50-layer spec: it runs on every edit in the editor.

Target: under 50 ms on the development machine (2 CPU cores). Prints the median and the worst of
many runs, for a plain 50-layer stack and for the same stack with residual Add merges; then how the
time grows with the layer count (1,000 to 8,000 layers): a ratio near 2 per doubling is linear,
near 4 quadratic (it was 3-3.5 before the analysis stopped scanning the layer list per layer).

    .venv/bin/python benchmarks/analyze_speed.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnstudio import ModelSpec, Node, analyze

TARGET_MS = 50.0


def plain_stack(layers: int = 50) -> ModelSpec:
    nodes: list[Node] = []
    pattern = [
        ("Conv2d", {"out_channels": 32, "kernel_size": 3, "padding": 1}),
        ("BatchNorm2d", {}),
        ("ReLU", {}),
    ]
    while len(nodes) < layers - 3:
        kind, params = pattern[len(nodes) % 3]
        nodes.append(Node(f"n{len(nodes)}", kind, params))
    nodes.append(Node("gap", "AdaptiveAvgPool2d", {"output_size": 1}))
    nodes.append(Node("flat", "Flatten"))
    nodes.append(Node("head", "Linear", {"out_features": 10}))
    return ModelSpec(tuple(nodes), (3, 32, 32), 10)


def residual_stack(layers: int = 50) -> ModelSpec:
    nodes: list[Node] = [Node("stem", "Conv2d", {"out_channels": 32, "kernel_size": 3})]
    entry = "stem"
    while len(nodes) < layers - 3:
        i = len(nodes)
        nodes.append(Node(f"c{i}", "Conv2d", {"out_channels": 32, "kernel_size": 3}, (entry,)))
        nodes.append(Node(f"b{i}", "BatchNorm2d"))
        nodes.append(Node(f"a{i}", "Add", {}, (f"b{i}", entry)))
        entry = f"a{i}"
    nodes.append(Node("gap", "AdaptiveAvgPool2d", {"output_size": 1}))
    nodes.append(Node("flat", "Flatten"))
    nodes.append(Node("head", "Linear", {"out_features": 10}))
    return ModelSpec(tuple(nodes), (3, 32, 32), 10)


def measure(spec: ModelSpec, repeats: int = 200) -> tuple[float, float]:
    analyze(spec)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = analyze(spec)
        times.append((time.perf_counter() - start) * 1000)
    assert result.valid, [str(e) for e in result.errors]
    return statistics.median(times), max(times)


def main() -> None:
    print(f"{'spec':<22}{'layers':>7}{'median ms':>11}{'worst ms':>10}{'target/median':>15}")
    for name, spec in (("plain stack", plain_stack()), ("residual (Add)", residual_stack())):
        median, worst = measure(spec)
        print(
            f"{name:<22}{len(spec.nodes):>7}{median:>11.2f}{worst:>10.2f}"
            f"{TARGET_MS / median:>14.0f}x"
        )
    print(f"\n{'layers':>7}{'median ms':>11}{'x previous':>12}")
    previous = None
    for layers in (1000, 2000, 4000, 8000):
        median, _worst = measure(plain_stack(layers), repeats=5)
        ratio = f"{median / previous:>11.2f}x" if previous else f"{'':>12}"
        print(f"{layers:>7}{median:>11.1f}{ratio}")
        previous = median


if __name__ == "__main__":
    main()
