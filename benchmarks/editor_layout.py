"""How long does the editor take to lay out a 300-layer graph, and to repaint it whole?

A ResNet-101-like spec (bottleneck blocks with residual Adds, a projection per stage; about 300
layers) is analysed once, then:
- layout: ui.editor.layout.layout_spec (grandalf's Sugiyama layout), cold (no cache);
- rebuild: the canvas making its scene (text measured, layout, blocks, edges, shape labels);
- repaint: the whole scene rendered into a QImage at 1:1 (offscreen), and the viewport's visible
  part at the window's size (what panning and zooming redraw).
Targets: layout <= 200 ms, full repaint <= 30 ms. Best of several runs.

    .venv/bin/python benchmarks/editor_layout.py [--stages 3 4 19 3] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QApplication

from cnnstudio.analysis import analyze
from cnnstudio.layers import get_layer_kind
from cnnstudio.spec import ModelSpec, Node


def resnet_like(stages: list[int]) -> ModelSpec:
    """A bottleneck ResNet with ``stages`` blocks per stage, written as the studio's graph."""
    nodes: list[Node] = []

    def add(node_id: str, kind: str, inputs: tuple[str, ...] = (), **params) -> str:
        params = {**get_layer_kind(kind).default_params(), **params}
        nodes.append(Node(node_id, kind, params, inputs))
        return node_id

    add("stem", "Conv2d", out_channels=64, kernel_size=7, stride=2, padding=3)
    add("stem_bn", "BatchNorm2d")
    last = add("stem_relu", "ReLU")
    width = 64
    for s, blocks in enumerate(stages):
        for b in range(blocks):
            tag, stride = f"s{s}b{b}", 2 if b == 0 and s > 0 else 1
            add(f"{tag}c1", "Conv2d", (last,), out_channels=width, kernel_size=1, padding=0)
            add(f"{tag}n1", "BatchNorm2d")
            add(f"{tag}r1", "ReLU")
            add(f"{tag}c2", "Conv2d", out_channels=width, stride=stride)
            add(f"{tag}n2", "BatchNorm2d")
            add(f"{tag}r2", "ReLU")
            add(f"{tag}c3", "Conv2d", out_channels=width * 4, kernel_size=1, padding=0)
            main = add(f"{tag}n3", "BatchNorm2d")
            skip = last
            if b == 0:
                add(f"{tag}p", "Conv2d", (last,), out_channels=width * 4, kernel_size=1,
                    padding=0, stride=stride)  # fmt: skip
                skip = add(f"{tag}pn", "BatchNorm2d")
            add(f"{tag}add", "Add", (main, skip))
            last = add(f"{tag}out", "ReLU")
        width *= 2
    add("pool", "AdaptiveAvgPool2d")
    add("flatten", "Flatten")
    add("fc", "Linear", out_features=1000)
    return ModelSpec(tuple(nodes), (3, 224, 224), 1000)


def best(fn, repeat: int) -> float:
    """The fastest of ``repeat`` calls, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, nargs="+", default=[3, 4, 19, 3])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])

    from ui.document import ProjectDocument
    from ui.editor import layout
    from ui.editor.canvas import INPUT_W, ModelCanvas
    from ui.editor.commands import SpecCommand

    spec = resnet_like(args.stages)
    document = ProjectDocument()
    canvas = ModelCanvas(document)
    canvas.resize(1200, 900)
    canvas.show()
    document.push(SpecCommand(document, spec, "benchmark"))
    analysis = analyze(spec)
    document.analysis = analysis  # as the background analysis would leave it
    canvas.rebuild()
    widths = {i: b.width for i, b in canvas.blocks.items()}

    def cold_layout() -> None:
        layout._layout.cache_clear()
        layout.layout_spec(spec, widths, INPUT_W)

    def rebuild() -> None:
        layout._layout.cache_clear()
        canvas.rebuild()

    def analysis_arrives() -> None:
        """The analysis of the spec just drawn arrives: the texts change, the widths mostly not."""
        document.analysis = None
        layout._layout.cache_clear()
        canvas.rebuild()
        document.analysis = analysis
        canvas.rebuild()

    scene = canvas.scene()
    rect = scene.sceneRect()
    image = QImage(int(rect.width()), int(rect.height()), QImage.Format.Format_ARGB32_Premultiplied)

    def full_repaint() -> None:
        painter = QPainter(image)
        scene.render(painter, QRectF(image.rect()), rect)
        painter.end()

    def visible_repaint() -> None:
        canvas.viewport().grab()

    fit = QImage(1200, 900, QImage.Format.Format_ARGB32_Premultiplied)

    def fit_repaint() -> None:
        painter = QPainter(fit)
        scene.render(painter, QRectF(fit.rect()), rect)
        painter.end()

    placed = canvas.graph_layout.places.values()
    rows = max(p.row for p in placed)
    print(f"graph: {len(spec.nodes)} layers, {len(canvas.graph_layout.routes)} edges, "
          f"{rows} rows, scene {rect.width():.0f}×{rect.height():.0f} px")  # fmt: skip
    figures = [
        ("layout (grandalf Sugiyama, cold)", cold_layout, "target <= 200"),
        ("canvas rebuild (measure, layout, items)", rebuild, ""),
        (
            "an edit: rebuild, then again with the analysis",
            analysis_arrives,
            "one layout, items twice",
        ),
        ("full repaint: whole scene 1:1 into a QImage", full_repaint, "target <= 30"),
        ("full repaint: whole scene fitted to 1200×900", fit_repaint, "every item drawn"),
        ("viewport repaint: 1200×900 window at 1:1", visible_repaint, "panning"),
    ]
    for name, fn, note in figures:
        print(f"{name:46s} {best(fn, args.repeat):8.1f} ms  {note}")
    document.shutdown()
    document.undo_stack.clear()
    del app


if __name__ == "__main__":
    main()
