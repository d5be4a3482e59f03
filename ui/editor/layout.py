"""Where the canvas puts each block: a layered (Sugiyama) layout of the model graph, computed by
grandalf without Qt so that it can be tested and benchmarked on its own.

Every layer sits on a row given by its longest path from the input, so a plain chain stays one
straight column; parallel branches share rows side by side, ordered for few crossings; an edge that
skips rows bends through points that keep it clear of the blocks in between."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from grandalf.graphs import Edge, Graph, Vertex
from grandalf.layouts import SugiyamaLayout

from cnnstudio.spec import INPUT, ModelSpec

ROW_H, ROW_GAP = 58.0, 30.0
"""A block's height, the room between rows (an edge's shape label lives there)."""
COLUMN_GAP = 36.0
INPUT_X = 150.0
"""Where the input's centre goes; a chain's column is centred under it."""
INPUT_TOP, INPUT_H = 8.0, 28.0
"""The input pill above the first row."""
TOP = INPUT_TOP + INPUT_H + ROW_GAP
"""The first row's top: a row's gap below the input pill, room for its edge's shape label (with
16 px the label touched both ports)."""


@dataclass(frozen=True)
class Placed:
    """A block's place: centre x, top y, width, and the row it sits on (0 is the input)."""

    x: float
    y: float
    w: float
    row: int


@dataclass(frozen=True)
class Route:
    """One edge: from ``source``'s bottom to ``target``'s top through ``points`` (scene
    coordinates, both ends included)."""

    source: str
    target: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class GraphLayout:
    places: dict[str, Placed]
    routes: tuple[Route, ...]

    def bottom(self, node_id: str) -> float:
        """Where edges leave the block ``node_id``."""
        place = self.places[node_id]
        return place.y + (INPUT_H if node_id == INPUT else ROW_H)

    @property
    def height(self) -> float:
        return max((p.y + ROW_H for p in self.places.values()), default=TOP)

    @property
    def span(self) -> tuple[float, float]:
        """The leftmost and rightmost x any block reaches."""
        places = self.places.values()
        return min(p.x - p.w / 2 for p in places), max(p.x + p.w / 2 for p in places)


def edges_of(spec: ModelSpec) -> list[tuple[str, str]]:
    """(source, target) for every input of every layer: the layer before it when it names none."""
    known = {INPUT, *(n.id for n in spec.nodes)}
    edges = []
    for index, node in enumerate(spec.nodes):
        previous = spec.nodes[index - 1].id if index else INPUT
        for source in node.inputs or (previous,):
            if source in known and source != node.id:
                edges.append((source, node.id))
    return edges


def row_top(row: int) -> float:
    """The top of a block on ``row`` (row 1 is the first layer, row 0 the input pill)."""
    return TOP + (row - 1) * (ROW_H + ROW_GAP) if row else INPUT_TOP


def layout_spec(spec: ModelSpec, widths: dict[str, float], input_w: float) -> GraphLayout:
    """The layout of ``spec`` with blocks ``widths`` wide (by layer id) and the input pill
    ``input_w`` wide."""
    ids = tuple(n.id for n in spec.nodes)
    sized = tuple((i, float(widths.get(i, 0.0))) for i in ids)
    return _layout(sized, tuple(edges_of(spec)), float(input_w))


class _View:
    __slots__ = ("h", "w", "xy")

    def __init__(self, w: float, h: float) -> None:
        self.w, self.h, self.xy = w, h, (0.0, 0.0)


class _EdgeView:
    __slots__ = ("points",)

    def setpath(self, points) -> None:
        self.points = points


@lru_cache(maxsize=16)
def _layout(
    sized: tuple[tuple[str, float], ...], edges: tuple[tuple[str, str], ...], input_w: float
) -> GraphLayout:
    vertices = {INPUT: Vertex(INPUT)}
    vertices[INPUT].view = _View(input_w, ROW_H)
    for node_id, w in sized:
        vertices[node_id] = Vertex(node_id)
        vertices[node_id].view = _View(w, ROW_H)
    links = [Edge(vertices[s], vertices[t]) for s, t in edges]
    for link in links:
        link.view = _EdgeView()
    graph = Graph(list(vertices.values()), links)
    places: dict[str, Placed] = {}
    routes: list[Route] = []
    left = None
    for component in graph.C:
        sugiyama = SugiyamaLayout(component)
        sugiyama.xspace, sugiyama.yspace = COLUMN_GAP, ROW_GAP
        roots = [v for v in component.sV if v.data == INPUT] or None
        sugiyama.init_all(roots=roots)
        sugiyama.draw(N=3)
        xs = {v.data: v.view.xy[0] for v in component.sV}
        shift = _shift(component, xs, left)
        first = 0 if INPUT in xs else 1  # a part cut off from the input starts on row 1
        for v in component.sV:
            row = sugiyama.grx[v].rank + first
            places[v.data] = Placed(xs[v.data] + shift, row_top(row), v.view.w, row)
        for link in component.sE:
            routes.append(_route(link, places, shift, first))
        left = max(p.x + p.w / 2 for p in places.values()) + COLUMN_GAP
    return GraphLayout(places, tuple(routes))


def _shift(component, xs: dict[str, float], left: float | None) -> float:
    """How far to move a component: its input under INPUT_X, any other component right of the
    ones before it."""
    if INPUT in xs:
        return INPUT_X - xs[INPUT]
    start = min(xs[v.data] - v.view.w / 2 for v in component.sV)
    return (left if left is not None else 0.0) - start


def _route(link, places: dict[str, Placed], shift: float, first: int) -> Route:
    source, target = link.v[0].data, link.v[1].data
    a, b = places[source], places[target]
    middle = [(x + shift, row_top(_row_of(y) + first)) for x, y in link.view.points[1:-1]]
    bends: list[tuple[float, float]] = []
    for x, y in middle:
        bends += [(x, y - ROW_GAP / 2), (x, y + ROW_H + ROW_GAP / 2)]
    bottom = a.y + (INPUT_H if source == INPUT else ROW_H)
    points = ((a.x, bottom), *bends, (b.x, b.y))
    return Route(source, target, tuple(points))


def _row_of(y_centre: float) -> int:
    """The row whose centre grandalf put at ``y_centre`` (its rows are ROW_H + ROW_GAP apart)."""
    return round((y_centre - ROW_H / 2) / (ROW_H + ROW_GAP))
