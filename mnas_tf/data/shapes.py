"""The six object classes of the synthetic dataset, as rasterised masks.

Class is carried by shape alone (colour is random), so a detector has to
learn geometry. Rotation is limited to +-15 degrees so that a square never
turns into a diamond.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw

# Category id = index + 1 (0 is Model Garden's background class).
NAMES = ("circle", "square", "triangle", "cross", "ring", "diamond")
MAX_ROTATION_DEG = 15.0
RING_INNER = 0.55
CROSS_ARM = 0.35


def _ellipse(n: int = 48) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


_CROSS = np.array([
    (-CROSS_ARM, -1), (CROSS_ARM, -1), (CROSS_ARM, -CROSS_ARM), (1, -CROSS_ARM),
    (1, CROSS_ARM), (CROSS_ARM, CROSS_ARM), (CROSS_ARM, 1), (-CROSS_ARM, 1),
    (-CROSS_ARM, CROSS_ARM), (-1, CROSS_ARM), (-1, -CROSS_ARM), (-CROSS_ARM, -CROSS_ARM),
], dtype=np.float64)

# Outlines in [-1, 1]^2 (x, y); a ring is an outer outline minus an inner one.
OUTLINES = {
    "circle": (_ellipse(), None),
    "square": (np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], dtype=np.float64), None),
    "triangle": (np.array([(0, -1), (1, 1), (-1, 1)], dtype=np.float64), None),
    "cross": (_CROSS, None),
    "ring": (_ellipse(), _ellipse() * RING_INNER),
    "diamond": (np.array([(0, -1), (1, 0), (0, 1), (-1, 0)], dtype=np.float64), None),
}

# Filled fraction of the unrotated bounding box, to aim for a pixel area.
FILL = {
    "circle": np.pi / 4,
    "square": 1.0,
    "triangle": 0.5,
    "cross": (4 * CROSS_ARM * 2 - (2 * CROSS_ARM) ** 2) / 4,
    "ring": np.pi / 4 * (1 - RING_INNER ** 2),
    "diamond": 0.5,
}


@dataclasses.dataclass(frozen=True)
class Shape:
    """One shape instance: its outlines in pixels relative to its window."""

    category: int  # index into NAMES
    outer: np.ndarray
    inner: np.ndarray | None
    height: int  # window size in pixels
    width: int


def make_shape(rng: np.random.Generator, category: int, width: float, height: float,
               max_extent: float) -> Shape:
    """Scale, flip and rotate a class outline; shrink it to fit max_extent."""
    name = NAMES[category]
    outer, inner = OUTLINES[name]
    theta = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    flip = -1.0 if name == "triangle" and rng.random() < 0.5 else 1.0
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    scale = np.array([width / 2.0, flip * height / 2.0])

    def place(points: np.ndarray) -> np.ndarray:
        return (points * scale) @ rot.T

    outer_px = place(outer)
    extent = outer_px.max(axis=0) - outer_px.min(axis=0)
    shrink = min(1.0, max_extent / float(extent.max()))
    outer_px *= shrink
    inner_px = place(inner) * shrink if inner is not None else None
    origin = outer_px.min(axis=0)
    w, h = (np.ceil(outer_px.max(axis=0) - origin).astype(int) + 1).tolist()
    shift = lambda p: p - origin  # noqa: E731
    return Shape(category, shift(outer_px), None if inner_px is None else shift(inner_px), h, w)


def rasterise(shape: Shape) -> np.ndarray:
    """Boolean mask of the shape inside its (height, width) window."""
    img = Image.new("L", (shape.width, shape.height), 0)
    draw = ImageDraw.Draw(img)
    draw.polygon([tuple(p) for p in shape.outer.tolist()], fill=255)
    if shape.inner is not None:
        draw.polygon([tuple(p) for p in shape.inner.tolist()], fill=0)
    return np.asarray(img) > 0
