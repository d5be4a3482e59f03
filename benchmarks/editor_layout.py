"""How long does the editor take to lay out, draw and repaint a big graph, and to take an edit?

Two graphs: ResNet-50 opened for editing (cnnstudio.fx_import, as `new --from-model
torchvision:resnet50` makes it; no weights) and a ResNet-101-like spec of about 300 layers
(bottleneck blocks with residual Adds). Each is analysed once, drawn in a 1200×900 canvas, then:
- layout: ui.editor.layout.layout_spec (grandalf's Sugiyama layout), cold (no cache);
- scene build: a new canvas drawing the graph (text measured, layout, blocks, edges, labels);
- an edit (one layer's setting changed, drawn, then drawn again when its analysis arrives): with
  every block made anew (as before the keyed update) and with the unchanged blocks reused;
- repaints of the viewport, what the user sees: at 1:1 (where one works), at Fit (readable: the
  width of a tall graph), at Whole Graph (everything, text hidden), panning by a screen; the
  overview's picture; and the whole scene rendered 1:1 into a QImage.
Targets: layout <= 200 ms, repaint <= 30 ms. Best of several runs (CPU time of the GUI thread),
figures side by side.

    .venv/bin/python benchmarks/editor_layout.py [--stages 3 4 19 3] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
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
    """The fastest of ``repeat`` calls, in milliseconds of the GUI thread's CPU time (all the
    work is on it; other work on a shared machine does not count)."""
    times = []
    for _ in range(repeat):
        start = time.thread_time()
        fn()
        times.append((time.thread_time() - start) * 1000)
    return min(times)


def resnet50() -> ModelSpec:
    """torchvision's ResNet-50 as ``new --from-model`` opens it (random weights: no download)."""
    from cnnstudio.fx_import import import_module, load_model

    return import_module(load_model("torchvision:resnet50"), (3, 224, 224), "resnet50").spec


def one_setting_changed(spec: ModelSpec) -> ModelSpec:
    """``spec`` with the bias of its middle convolution switched: one block's text changes."""
    convs = [i for i, n in enumerate(spec.nodes) if n.kind == "Conv2d"]
    index = convs[len(convs) // 2]
    node = spec.nodes[index]
    changed = Node(
        node.id, node.kind, {**node.params, "bias": not node.params["bias"]}, node.inputs
    )
    return ModelSpec(
        (*spec.nodes[:index], changed, *spec.nodes[index + 1 :]),
        spec.input_shape,
        spec.num_classes,
    )


def one_layer_added(spec: ModelSpec) -> ModelSpec:
    """``spec`` with a ReLU after its middle convolution: the graph's structure changes."""
    convs = [i for i, n in enumerate(spec.nodes) if n.kind == "Conv2d"]
    index = convs[len(convs) // 2] + 1
    relu = Node("added_relu", "ReLU", {}, (spec.nodes[index - 1].id,))
    return replace(spec, nodes=(*spec.nodes[:index], relu, *spec.nodes[index:]))


def figures(spec: ModelSpec, repeat: int) -> tuple[str, dict[str, float]]:
    """The figures of one graph, in milliseconds by name, and a line that describes the graph."""
    from ui.document import ProjectDocument
    from ui.editor import layout
    from ui.editor.canvas import INPUT_W, ModelCanvas

    document = ProjectDocument()
    document.project.model = spec
    analyses = {id(spec): analyze(spec)}
    document.analysis = analyses[id(spec)]  # as the background analysis would leave it
    canvas = ModelCanvas(document)
    canvas.resize(1200, 900)
    canvas.show()
    canvas.rebuild()
    widths = {i: b.width for i, b in canvas.blocks.items()}
    edited, added = one_setting_changed(spec), one_layer_added(spec)
    analyses[id(edited)], analyses[id(added)] = analyze(edited), analyze(added)
    out: dict[str, float] = {}

    def cold_layout() -> None:
        layout._layout.cache_clear()
        layout.layout_spec(spec, widths, INPUT_W)

    def build() -> None:
        layout._layout.cache_clear()
        ModelCanvas(document).deleteLater()

    def edit(reuse: bool, changed: ModelSpec = edited) -> None:
        """One setting changed (or a layer added: a layout never seen, computed on the GUI thread):
        drawn with the previous analysis, then with its own."""
        new = changed if document.project.model is spec else spec
        if changed is added:
            layout._layout.cache_clear()
        document.project.model = new
        for analysis in (document.analysis, analyses[id(new)]):
            document.analysis = analysis
            if not reuse:
                canvas.blocks = {}  # every block made anew, as a clear + rebuild did
            canvas.rebuild()

    out["layout (grandalf Sugiyama, cold)"] = best(cold_layout, repeat)
    out["scene build (a new canvas: text, layout, items)"] = best(build, repeat)
    out["an edit, every block made anew"] = best(lambda: edit(False), repeat)
    out["an edit, unchanged blocks reused"] = best(lambda: edit(True), repeat)
    out["a layer added: a new layout, blocks reused"] = best(lambda: edit(True, added), repeat)
    document.project.model, document.analysis = spec, analyses[id(spec)]
    canvas.rebuild()
    out.update(repaints(canvas, repeat))
    rect = canvas.scene().sceneRect()
    line = (f"{len(spec.nodes)} layers, {len(canvas.graph_layout.routes)} edges, "
            f"scene {rect.width():.0f}×{rect.height():.0f} px")  # fmt: skip
    canvas.deleteLater()
    document.shutdown()
    return line, out


def repaints(canvas, repeat: int) -> dict[str, float]:
    """Repaints of the viewport (grab() paints it as the screen would) and of the whole scene."""
    scene = canvas.scene()
    rect = scene.sceneRect()
    image = QImage(int(rect.width()), int(rect.height()), QImage.Format.Format_ARGB32_Premultiplied)

    def whole_scene() -> None:
        painter = QPainter(image)
        scene.render(painter, QRectF(image.rect()), rect)
        painter.end()

    def pan() -> None:
        bar = canvas.verticalScrollBar()
        bar.setValue(bar.value() + canvas.viewport().height() if bar.value() < bar.maximum() else 0)
        canvas.viewport().grab()

    out = {}
    canvas.show_input()
    out["viewport repaint at 1:1 (input at the top)"] = best(canvas.viewport().grab, repeat)
    out["viewport repaint, panning a screen at 1:1"] = best(pan, repeat)
    canvas.zoom_to_fit()
    out[f"viewport repaint at Fit (zoom {canvas.transform().m11():.2f})"] = best(
        canvas.viewport().grab, repeat
    )
    canvas.zoom_whole()
    out[f"viewport repaint at Whole Graph (zoom {canvas.transform().m11():.3f})"] = best(
        canvas.viewport().grab, repeat
    )
    out["overview picture (drawn once per edit)"] = best(canvas.overview.refresh, repeat)
    out["whole scene 1:1 into a QImage"] = best(whole_scene, repeat)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, nargs="+", default=[3, 4, 19, 3])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    graphs = {"ResNet-50": resnet50(), "ResNet-like": resnet_like(args.stages)}
    results = {name: figures(spec, args.repeat) for name, spec in graphs.items()}
    for name, (line, _out) in results.items():
        print(f"{name}: {line}")
    print(f"{'ms, best of ' + str(args.repeat):50s}" + "".join(f"{n:>13s}" for n in results))
    rows = [list(out) for _line, out in results.values()]
    for index, row in enumerate(zip(*rows, strict=True)):
        label = row[0].split(" (zoom")[0] if len(set(row)) > 1 else row[0]
        values = [list(out.values())[index] for _line, out in results.values()]
        print(f"{label:50s}" + "".join(f"{v:13.1f}" for v in values))
    print("targets: layout <= 200 ms, repaint <= 30 ms")
    del app


if __name__ == "__main__":
    main()
