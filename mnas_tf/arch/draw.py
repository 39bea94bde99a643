"""Architectures drawn as standalone SVG, the way the papers draw them, so a search report
and `python -m mnas_tf.describe ARCH --draw` show one picture of a cell.

MnasFPN-family cells follow the MnasFPN paper's Fig. 2: the cell inputs C3..C6 and the
outputs as rounded boxes, one rectangle per block with its expansion F, resolution R,
merge op and kernel k, and the cell-wide residuals as dashed arrows. MSNAS encoders
follow the MSNAS paper's Fig. 1(b) (`mnas_tf.arch.draw_msnas`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mnas_tf.arch.spec import ArchitectureError, MnasFPNSpec
from mnas_tf.arch.svg import MARGIN, TOP, Svg, curve

BLOCK_W, BLOCK_H, END_W, END_H = 124, 50, 64, 40
COL, ROW = 156, 82


def draw(spec) -> str:
    """The SVG of a MnasFPN-family or MSNAS spec."""
    from mnas_tf.arch.msnas import MSNASSpec
    if isinstance(spec, MSNASSpec):
        from mnas_tf.arch.draw_msnas import draw_msnas
        return draw_msnas(spec)
    return draw_cell(spec)


def draw_cell(spec: MnasFPNSpec) -> str:
    """One MnasFPN-family cell (Fig. 2). Blocks no output reaches are drawn grey."""
    n, levels = len(spec.blocks), spec.levels
    used = set(spec.used_blocks())
    outputs = spec.output_nodes()
    width = 2 * MARGIN + END_W + n * COL + COL + 10
    height = TOP + len(levels) * ROW + 40
    row_y = {lvl: TOP + i * ROW for i, lvl in enumerate(levels)}
    out_x = MARGIN + END_W + n * COL + COL - END_W + 10
    title = (f"{spec.name or spec.family} cell: C={spec.channels}, {spec.repeats} repeat(s), "
             f"P{spec.min_level}-P{spec.max_level}, family {spec.family}"
             + ("" if spec.sdo or spec.family == "nasfpn" else ", no SDO")
             + ("" if spec.family != "nasfpn" else
                f", 3x3 {'separable ' if spec.separable else ''}convs"))
    svg = Svg(width, height, title)

    def box(node: int) -> tuple[float, float, float, float]:
        if node < spec.num_levels:
            return MARGIN, row_y[spec.node_level(node)] + (BLOCK_H - END_H) / 2, END_W, END_H
        i = node - spec.num_levels
        return MARGIN + END_W + i * COL + 26, row_y[spec.blocks[i].level], BLOCK_W, BLOCK_H

    for i in range(n):  # edges first, boxes drawn over them
        x, y, _, h = box(spec.num_levels + i)
        sources = spec.block_sources(i)
        for k, node in enumerate(sources):
            sx, sy, sw, sh = box(node)
            color = "#555" if i in used else "#bbb"
            dy = (k - (len(sources) - 1) / 2) * 8
            svg.path(curve(sx + sw, sy + sh / 2, x, y + h / 2 + dy), color)
    for level, node in outputs.items():
        sx, sy, sw, sh = box(node)
        svg.path(curve(sx + sw, sy + sh / 2, out_x, row_y[level] + BLOCK_H / 2), "#555")
    if spec.cell_residuals:
        for level in levels:
            y0 = row_y[level] + (BLOCK_H + END_H) / 2
            lane = row_y[level] + BLOCK_H + 12
            svg.path(f"M{MARGIN + END_W / 2:.1f},{y0:.1f} L{MARGIN + END_W / 2:.1f},{lane:.1f} "
                     f"L{out_x + END_W / 2:.1f},{lane:.1f} L{out_x + END_W / 2:.1f},{y0:.1f}",
                     "#c0392b", dash=True)
    for level in levels:
        y = row_y[level] + (BLOCK_H - END_H) / 2
        for x, name in ((MARGIN, f"C{level}"), (out_x, f"P{level} out")):
            svg.rect(x, y, END_W, END_H, fill="#eaf2fb", rx=12)
            svg.text(x + END_W / 2, y + END_H / 2 + 4, name, size=12, weight="bold")
    for i, block in enumerate(spec.blocks):
        x, y, w, h = box(spec.num_levels + i)
        on = i in used
        svg.rect(x, y, w, h, fill="#fdf6e3" if on else "#f4f4f4",
                 stroke="#333" if on else "#aaa", dash=not on)
        color = "#111" if on else "#999"
        first = f"b{i}: " + ("" if block.expansion is None else f"F={block.expansion}, ") + \
            f"R=1/{2 ** block.level}"
        second = block.merge + ("" if block.kernel is None else f", k={block.kernel}")
        svg.text(x + w / 2, y + 20, first, color=color)
        svg.text(x + w / 2, y + 37, second + ("" if on else " (unused)"), color=color)
    note = ("dashed red: cell-wide residual (input to the output at its level)"
            if spec.cell_residuals else "no cell-wide residuals (NAS-FPN cell)")
    svg.text(MARGIN, height - 12, note, size=10, anchor="start", color="#666")
    return str(svg)


def load_any(ref: Any):
    """A MnasFPN-family or MSNAS spec from a spec, dict, inline JSON, .json path or shipped
    name (MSNAS when the data has `strides`); ArchitectureError otherwise."""
    from mnas_tf.arch.msnas import MSNASSpec, load_msnas, msnas_names
    from mnas_tf.arch.named import load_architecture
    if isinstance(ref, (MnasFPNSpec, MSNASSpec)):
        return ref
    if isinstance(ref, dict):
        return load_msnas(ref) if "strides" in ref else MnasFPNSpec.from_dict(ref)
    text = ref.strip() if isinstance(ref, str) else ""
    data = None
    if text.startswith("{"):
        data = text
    elif text.endswith(".json") and Path(text).is_file():
        data = Path(text).read_text()
    if data is not None:
        try:
            is_msnas = "strides" in json.loads(data)
        except (json.JSONDecodeError, TypeError):
            is_msnas = False
        return load_msnas(text) if is_msnas else load_architecture(text)
    if text in msnas_names():
        return load_msnas(text)
    try:
        return load_architecture(ref)
    except ArchitectureError as e:
        raise ArchitectureError(f"{e}; MSNAS ones are {', '.join(msnas_names())}") from None
