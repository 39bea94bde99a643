"""The few SVG primitives the architecture drawings use; `str(Svg)` is a standalone
<svg> element (its own arrow markers, a white background), so it embeds in HTML as is."""

from __future__ import annotations

import html

MARGIN, TOP = 24, 56
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"


class Svg:
    """Rectangles, text and arrows on a white page of `width` x `height`, titled."""

    def __init__(self, width: float, height: float, title: str):
        self.width, self.height, self.parts = width, height, []
        self._colors: set = set()  # one arrow marker per stroke colour
        self.text(MARGIN, 24, title, size=14, weight="bold", anchor="start")

    def rect(self, x, y, w, h, fill="#fff", stroke="#333", rx=0, dash=False, width=1.3):
        extra = " stroke-dasharray='4 3'" if dash else ""
        self.parts.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{w:.1f}' height='{h:.1f}' "
                          f"rx='{rx}' fill='{fill}' stroke='{stroke}' "
                          f"stroke-width='{width}'{extra}/>")

    def text(self, x, y, words, size=11, weight="normal", anchor="middle", color="#111"):
        self.parts.append(f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' "
                          f"font-weight='{weight}' text-anchor='{anchor}' fill='{color}' "
                          f"{FONT}>{html.escape(str(words))}</text>")

    def path(self, d: str, color="#555", dash=False, width=1.2, arrow=True):
        extra = " stroke-dasharray='5 4'" if dash else ""
        end = f" marker-end='url(#arrow-{color[1:]})'" if arrow else ""
        self.parts.append(f"<path d='{d}' fill='none' stroke='{color}' "
                          f"stroke-width='{width}'{extra}{end}/>")
        self._colors.add(color)

    def __str__(self) -> str:
        markers = "".join(
            f"<marker id='arrow-{c[1:]}' viewBox='0 0 10 10' refX='9' refY='5' "
            f"markerWidth='7' markerHeight='7' orient='auto-start-reverse'>"
            f"<path d='M0,0 L10,5 L0,10 z' fill='{c}'/></marker>"
            for c in sorted(self._colors))
        return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{self.width:.0f}' "
                f"height='{self.height:.0f}' viewBox='0 0 {self.width:.0f} "
                f"{self.height:.0f}'><defs>{markers}</defs>"
                f"<rect width='100%' height='100%' fill='#fff'/>{''.join(self.parts)}</svg>")


def curve(x1, y1, x2, y2) -> str:
    """A horizontal-tangent cubic from (x1, y1) to (x2, y2)."""
    bend = max(abs(x2 - x1) * 0.45, 20)
    return (f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} "
            f"{x2:.1f},{y2:.1f}")
