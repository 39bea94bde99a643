"""An MSNAS architecture as SVG, like the MSNAS paper's Fig. 1(b): the encoder's blocks
placed by their absolute stride (one row per stride 4..64), the stride path, the laterals
(eq. 6) as dashed arrows, and the five heads below, each fed by the block it reads."""

from __future__ import annotations

from mnas_tf.arch.svg import MARGIN, TOP, Svg, curve
from mnas_tf.arch.msnas import FEATURE_STRIDES, STEM_STRIDE, MSNASSpec

W, H, PITCH, ROW = 44, 30, 58, 52
LABEL_W = 92
COLORS = {2: "#d6e6f5", 1: "#eeeeee", 0.5: "#fbe3c8"}  # downsample, normal, upsample
SIGNS = {2: "/2", 1: "=", 0.5: "x2"}


def draw_msnas(spec: MSNASSpec) -> str:
    enc = spec.encoder
    strides = enc.block_strides()
    rows = {s: i for i, s in enumerate(FEATURE_STRIDES)}
    n = enc.num_blocks
    heads_y = TOP + len(rows) * ROW + 40
    width = MARGIN * 2 + LABEL_W + (n + 1) * PITCH + 10
    width = max(width, MARGIN * 2 + LABEL_W + len(spec.feature_strides) * 96)
    height = heads_y + H + 44
    title = (f"{spec.name or 'msnas'}: C={enc.channels}, {n} blocks, heads' feature strides "
             f"{list(spec.feature_strides)}")
    svg = Svg(width, height, title)

    def pos(index: int) -> tuple[float, float]:
        """Top-left of block `index` (-1: the stem)."""
        stride = STEM_STRIDE if index < 0 else strides[index]
        return MARGIN + LABEL_W + (index + 1) * PITCH, TOP + rows[stride] * ROW

    for stride, r in rows.items():
        y = TOP + r * ROW + H / 2 + 4
        svg.text(MARGIN, y, f"stride {stride}", size=10, anchor="start", color="#666")
        svg.path(f"M{MARGIN + LABEL_W - 8},{y - 4:.1f} L{width - MARGIN},{y - 4:.1f}",
                 "#e6e6e6", arrow=False, width=1)
    for i in range(n):
        (x0, y0), (x1, y1) = pos(i - 1), pos(i)
        svg.path(curve(x0 + W, y0 + H / 2, x1, y1 + H / 2), "#444")
    for i, source in enumerate(enc.lateral_sources()):
        if source is not None:
            (x0, y0), (x1, y1) = pos(source), pos(i)
            lift = y0 - 18
            svg.path(f"M{x0 + W / 2:.1f},{y0:.1f} C{x0 + W / 2:.1f},{lift:.1f} "
                     f"{x1 + W / 2:.1f},{lift:.1f} {x1 + W / 2:.1f},{y1:.1f}", "#2e86c1",
                     dash=True)
    head_x = [MARGIN + LABEL_W + g * 96 for g in range(len(spec.feature_strides))]
    for g, block in enumerate(spec.head_blocks()):
        x, y = pos(block)
        svg.path(f"M{x + W / 2:.1f},{y + H:.1f} C{x + W / 2:.1f},{heads_y - 30:.1f} "
                 f"{head_x[g] + 40:.1f},{heads_y - 30:.1f} {head_x[g] + 40:.1f},{heads_y:.1f}",
                 "#27ae60")
    x, y = pos(-1)
    svg.rect(x, y, W, H, fill="#fff", rx=8)
    svg.text(x + W / 2, y + H / 2 + 4, "stem", size=10)
    for i, s in enumerate(enc.strides):
        x, y = pos(i)
        svg.rect(x, y, W, H, fill=COLORS[s], rx=3)
        svg.text(x + W / 2, y + 13, f"b{i}", size=10, weight="bold")
        svg.text(x + W / 2, y + 25, SIGNS[s], size=10)
    for g, s in enumerate(spec.feature_strides):
        svg.rect(head_x[g], heads_y, 80, H, fill="#e8f8ef", rx=8)
        svg.text(head_x[g] + 40, heads_y + H / 2 + 4, f"head {g}: s={s}", size=10)
    svg.text(MARGIN, height - 12, "block: /2 downsample, = normal, x2 upsample; dashed blue: "
             "lateral (eq. 6); green: the feature each head reads", size=10, anchor="start",
             color="#666")
    return str(svg)
