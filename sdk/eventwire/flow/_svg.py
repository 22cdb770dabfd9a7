"""A flow graph as a self-contained SVG picture, laid out in layers from left to right.

Layout: cycles are broken by a depth-first search (the edges that close a cycle are drawn
as arcs above or below the picture); every node goes to the layer of its longest path from
a source; nodes within a layer are ordered by the mean position of their predecessors.
Forward edges are curves between neighbouring sides; edge labels sit at the middle of their
curve. Text widths are estimated (no font metrics needed), so the file renders the same
anywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from xml.sax.saxutils import escape

from eventwire.flow._model import Edge, FlowGraph

__all__ = ["to_svg"]

FONT = "Helvetica, Arial, sans-serif"
CHAR = 7.0  # estimated width of one 12px character
LINE = 15.0  # height of one label line
NODE_H = 46.0
NODE_GAP = 90.0
MARGIN = 24.0
EVENT_COLOUR = "#2b6cb0"
COMMAND_COLOUR = "#c05621"


@dataclasses.dataclass
class _Box:
    name: str
    layer: int
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = NODE_H

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


def _text_width(text: str, char: float = CHAR) -> float:
    return len(text) * char


def _label_size(edge: Edge) -> tuple[float, float]:
    width = max(_text_width(m) for m in edge.messages) + 12
    return width, LINE * len(edge.messages) + 6


def _back_edges(nodes: Sequence[str], edges: Sequence[Edge]) -> set[Edge]:
    succ: dict[str, list[Edge]] = {n: [] for n in nodes}
    indegree = dict.fromkeys(nodes, 0)
    for e in edges:
        if e.source != e.target:
            succ[e.source].append(e)
            indegree[e.target] += 1
    state: dict[str, int] = {}
    back: set[Edge] = set()

    def visit(node: str) -> None:
        state[node] = 1
        for e in succ[node]:
            if state.get(e.target) == 1:
                back.add(e)
            elif e.target not in state:
                visit(e.target)
        state[node] = 2

    for node in sorted(nodes, key=lambda n: (indegree[n] > 0, nodes.index(n))):
        if node not in state:
            visit(node)
    return back


def _layout(graph: FlowGraph) -> tuple[dict[str, _Box], set[Edge]]:
    nodes, edges = graph.nodes, graph.edges
    back = _back_edges(nodes, edges)
    forward = [e for e in edges if e not in back and e.source != e.target]
    layer = dict.fromkeys(nodes, 0)
    for _ in range(len(nodes)):
        for e in forward:
            layer[e.target] = max(layer[e.target], layer[e.source] + 1)
    boxes = {n: _Box(n, layer[n], w=max(110.0, _text_width(n, 8.0) + 32)) for n in nodes}
    layers: dict[int, list[str]] = {}
    for n in nodes:
        layers.setdefault(layer[n], []).append(n)
    # order each layer by the mean position of its predecessors (two sweeps)
    position = {n: float(i) for members in layers.values() for i, n in enumerate(members)}
    for _ in range(2):
        for index in sorted(layers)[1:]:

            def mean(n: str) -> float:
                preds = [position[e.source] for e in forward if e.target == n]
                return sum(preds) / len(preds) if preds else position[n]

            layers[index].sort(key=mean)
            for i, n in enumerate(layers[index]):
                position[n] = float(i)
    # horizontal: each gap is wide enough for the labels of the edges leaving that layer
    x = MARGIN
    tallest = max(len(m) for m in layers.values())
    height = tallest * NODE_H + (tallest - 1) * NODE_GAP
    for index in sorted(layers):
        members = layers[index]
        width = max(boxes[n].w for n in members)
        column = len(members) * NODE_H + (len(members) - 1) * NODE_GAP
        y = (height - column) / 2
        for n in members:
            box = boxes[n]
            box.x, box.y, box.w = x, y, width
            y += NODE_H + NODE_GAP
        gap = 0.0
        for e in forward:
            if layer[e.source] == index:
                gap = max(gap, _label_size(e)[0])
        for e in back:
            if layer[e.source] == index + 1 and layer[e.target] == index:
                gap = max(gap, _label_size(e)[0])
        pairs = [
            (e, r)
            for e in forward
            for r in back
            if layer[e.source] == index and (r.source, r.target) == (e.target, e.source)
        ]
        for e, r in pairs:
            gap = max(gap, _label_size(e)[0] + _label_size(r)[0] + 12)
        x += width + max(120.0, gap + 48)
    return boxes, back


def _bezier(
    p0: tuple[float, float],
    p1: tuple[float, float],
    p2: tuple[float, float],
    p3: tuple[float, float],
    t: float = 0.5,
) -> tuple[float, float]:
    u = 1 - t
    return (
        u**3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t**3 * p3[0],
        u**3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t**3 * p3[1],
    )


def _ports(boxes: dict[str, _Box], edges: Sequence[Edge]) -> dict[tuple[Edge, str], float]:
    """Spread the edges attached to each side of a node over its height.

    Every edge goes from the right side of its left end to the left side of its right end.
    """
    sides: dict[tuple[str, str], list[tuple[float, int, Edge, str]]] = {}
    for e in edges:
        left, right = sorted((e.source, e.target), key=lambda n: boxes[n].x)
        other_left, other_right = boxes[right].cy, boxes[left].cy
        rank = 0 if e.source == left else 1
        sides.setdefault((left, "r"), []).append((other_left, rank, e, left))
        sides.setdefault((right, "l"), []).append((other_right, rank, e, right))
    out: dict[tuple[Edge, str], float] = {}
    for (name, _), members in sides.items():
        members.sort(key=lambda m: (m[0], m[1]))
        box = boxes[name]
        for i, (_, _, e, end) in enumerate(members):
            out[(e, end)] = box.y + box.h * (i + 1) / (len(members) + 1)
    return out


def _at_x(
    p0: tuple[float, float],
    p1: tuple[float, float],
    p2: tuple[float, float],
    p3: tuple[float, float],
    x: float,
) -> tuple[float, float]:
    """The point of the curve whose x is nearest `x` (sampled)."""
    points = [_bezier(p0, p1, p2, p3, i / 64) for i in range(65)]
    return min(points, key=lambda p: abs(p[0] - x))


def _label(x: float, y: float, edge: Edge, colour: str) -> list[str]:
    w, h = _label_size(edge)
    parts = [
        f'<rect x="{x - w / 2:.1f}" y="{y - h / 2:.1f}" width="{w:.1f}" height="{h:.1f}" '
        f'rx="3" fill="#ffffff" fill-opacity="0.92" stroke="{colour}" '
        'stroke-width="0.6"/>'
    ]
    top = y - h / 2 + 3 + LINE * 0.75
    for i, message in enumerate(edge.messages):
        parts.append(
            f'<text x="{x:.1f}" y="{top + i * LINE:.1f}" text-anchor="middle" '
            f'fill="{colour}">{escape(message)}</text>'
        )
    return parts


def to_svg(graph: FlowGraph, title: str = "") -> str:
    """The picture of `graph` as SVG text."""
    if not graph.nodes:
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><text x="10" '
            'y="24">(nothing to draw)</text></svg>\n'
        )
    boxes, back = _layout(graph)
    # an edge back to the neighbouring layer is drawn like a forward one, right to left
    near = {e for e in back if boxes[e.source].layer == boxes[e.target].layer + 1}
    back -= near
    forward = [e for e in graph.edges if e not in back and e.source != e.target]
    loops = [e for e in graph.edges if e.source == e.target]
    ports = _ports(boxes, forward)
    pairs = {(e.source, e.target) for e in forward}
    degree = dict.fromkeys(boxes, 0)
    for e in forward:
        degree[e.source] += 1
        degree[e.target] += 1
    top = min(b.y for b in boxes.values())
    bottom = max(b.y + b.h for b in boxes.values())
    right = max(b.x + b.w for b in boxes.values())
    body: list[str] = []
    labels: list[str] = []
    for e in forward:
        s, t = boxes[e.source], boxes[e.target]
        colour = COMMAND_COLOUR if e.kind == "command" else EVENT_COLOUR
        reverse = e in near
        p0 = (s.x if reverse else s.x + s.w, ports[(e, e.source)])
        p3 = (t.x + t.w if reverse else t.x, ports[(e, e.target)])
        dx = (p3[0] - p0[0]) / 2
        p1, p2 = (p0[0] + dx, p0[1]), (p3[0] - dx, p3[1])
        body.append(_path(p0, p1, p2, p3, e.kind, colour))
        w, _ = _label_size(e)
        if (e.target, e.source) in pairs:
            # both ways: the two labels side by side, packed against the end with fewer
            # arrows (a hub's arrows run close together near it)
            partner = next(r for r in forward if (r.source, r.target) == (e.target, e.source))
            wp, _ = _label_size(partner)
            lo, hi = sorted((s, t), key=lambda b: b.x)
            if degree[lo.name] >= degree[hi.name]:
                wall = hi.x - 10
                mine_first = e.source == hi.name
                anchor = wall - w / 2 if mine_first else wall - wp - 10 - w / 2
            else:
                wall = lo.x + lo.w + 10
                mine_first = e.source == lo.name
                anchor = wall + w / 2 if mine_first else wall + wp + 10 + w / 2
        else:  # in the first gap after the source, so a long edge's label clears the boxes
            first_gap = min((b.x for b in boxes.values() if b.layer == s.layer + 1), default=p3[0])
            anchor = (p0[0] + first_gap) / 2 if not reverse else (p0[0] + p3[0]) / 2
        labels += _label(*_at_x(p0, p1, p2, p3, anchor), e, colour)
    # edges that close a cycle: arcs alternately below and above the picture
    below, above = bottom, top
    for i, e in enumerate(sorted(back, key=lambda e: abs(boxes[e.source].cx - boxes[e.target].cx))):
        s, t = boxes[e.source], boxes[e.target]
        colour = COMMAND_COLOUR if e.kind == "command" else EVENT_COLOUR
        _, h = _label_size(e)
        sx, tx = s.cx + 10, t.cx - 10
        if i % 2 == 0:
            depth = below + 24 + h
            below = depth + h / 2 - 6
            p0, p3 = (sx, s.y + s.h), (tx, t.y + t.h)
            ctrl = depth + (depth - max(p0[1], p3[1])) / 3
        else:
            depth = above - 24 - h
            above = depth - h / 2 + 6
            p0, p3 = (sx, s.y), (tx, t.y)
            ctrl = depth - (min(p0[1], p3[1]) - depth) / 3
        p1, p2 = (sx, ctrl), (tx, ctrl)
        body.append(_path(p0, p1, p2, p3, e.kind, colour))
        labels += _label(*_bezier(p0, p1, p2, p3), e, colour)
    for e in loops:
        s = boxes[e.source]
        colour = COMMAND_COLOUR if e.kind == "command" else EVENT_COLOUR
        _, h = _label_size(e)
        p0, p3 = (s.x + s.w * 0.75, s.y), (s.x + s.w * 0.25, s.y)
        lift = above - 24 - h
        above = lift - h / 2 + 6
        ctrl = lift - (s.y - lift) / 3
        p1, p2 = (p0[0] + 30, ctrl), (p3[0] - 30, ctrl)
        body.append(_path(p0, p1, p2, p3, e.kind, colour))
        labels += _label(*_bezier(p0, p1, p2, p3), e, colour)
    for box in boxes.values():
        placeholder = box.name in graph.placeholders
        dashed = ' stroke-dasharray="4 3"' if placeholder else ""
        body.append(
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" '
            f'rx="8" fill="{"#f7f7f7" if placeholder else "#edf2f7"}" stroke="#4a5568" '
            f'stroke-width="{1 if placeholder else 1.6}"'
            f"{dashed}/>"
        )
        weight = "normal" if placeholder else "bold"
        body.append(
            f'<text x="{box.cx:.1f}" y="{box.cy + 5:.1f}" text-anchor="middle" '
            f'font-size="14" font-weight="{weight}" fill="#1a202c">'
            f"{escape(box.name)}</text>"
        )
    legend_y = below + 30
    title_h = 24.0 if title else 0.0
    shift_y = MARGIN + title_h - above
    width = max(right + MARGIN, MARGIN + 560)
    height = legend_y + shift_y + 16
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONT}" font-size="12">',
        "<defs>",
        *(
            f'<marker id="arrow-{kind}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
            f'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            f'fill="{colour}"/></marker>'
            for kind, colour in (("event", EVENT_COLOUR), ("command", COMMAND_COLOUR))
        ),
        "</defs>",
        f'<rect width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>',
    ]
    if title:
        head.append(
            f'<text x="{MARGIN}" y="{MARGIN + 4:.0f}" font-size="16" '
            f'font-weight="bold" fill="#1a202c">{escape(title)}</text>'
        )
    legend = [
        f'<g transform="translate({MARGIN},{legend_y:.1f})">',
        f'<path d="M0,0 L36,0" stroke="{EVENT_COLOUR}" stroke-width="1.6" '
        'marker-end="url(#arrow-event)"/>',
        '<text x="44" y="4" fill="#4a5568">event (every consuming service gets it)</text>',
        f'<path d="M290,0 L326,0" stroke="{COMMAND_COLOUR}" stroke-width="1.6" '
        'stroke-dasharray="6 4" marker-end="url(#arrow-command)"/>',
        '<text x="334" y="4" fill="#4a5568">command (one handling service)</text>',
        "</g>",
    ]
    group = f'<g transform="translate(0,{shift_y:.1f})">'
    return "\n".join([*head, group, *body, *labels, *legend, "</g>", "</svg>"]) + "\n"


def _path(
    p0: tuple[float, float],
    p1: tuple[float, float],
    p2: tuple[float, float],
    p3: tuple[float, float],
    kind: str,
    colour: str,
) -> str:
    dash = ' stroke-dasharray="6 4"' if kind == "command" else ""
    return (
        f'<path d="M{p0[0]:.1f},{p0[1]:.1f} C{p1[0]:.1f},{p1[1]:.1f} {p2[0]:.1f},'
        f'{p2[1]:.1f} {p3[0]:.1f},{p3[1]:.1f}" fill="none" stroke="{colour}" '
        f'stroke-width="1.6"{dash} marker-end="url(#arrow-{kind})"/>'
    )
