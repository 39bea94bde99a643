"""Textured backgrounds for the synthetic dataset.

Flat backgrounds make detection trivial (any edge is an object), so every
image mixes smooth gradients, value-noise blotches, stripes or checkers,
clutter lines and pixel noise. Everything is drawn from the given generator,
so a seed fixes the image.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, size=3).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel row/column coordinates (cached, read-only)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a + (b - a) * t.astype(np.float32)[..., None]


def gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """Linear blend of two colours at a random angle."""
    yy, xx = _grid(size)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy) / size
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return _mix(_colour(rng), _colour(rng), t)


def blotches(rng: np.random.Generator, size: int) -> np.ndarray:
    """Value noise: a coarse grid of palette colours, smoothly upsampled."""
    cells = int(rng.integers(3, 13))
    palette = rng.uniform(0, 255, size=(int(rng.integers(2, 5)), 3))
    coarse = palette[rng.integers(0, len(palette), size=(cells, cells))]
    img = Image.fromarray(coarse.astype(np.uint8), "RGB").resize(
        (size, size), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32)


def stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    """Hard or sinusoidal stripes at a random angle and period."""
    yy, xx = _grid(size)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(6, 40)
    phase = (np.cos(angle) * xx + np.sin(angle) * yy) / period
    if rng.random() < 0.5:
        t = (np.floor(phase) % 2).astype(np.float32)
    else:
        t = 0.5 + 0.5 * np.sin(2 * np.pi * phase)
    return _mix(_colour(rng), _colour(rng), t)


def checkers(rng: np.random.Generator, size: int) -> np.ndarray:
    """Checkerboard with a random cell size."""
    yy, xx = _grid(size)
    cell = rng.uniform(8, 48)
    t = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float32)
    return _mix(_colour(rng), _colour(rng), t)


PATTERNS = (gradient, blotches, stripes, checkers)


def clutter_lines(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    """A few random line segments: edges that belong to no object."""
    count = int(rng.integers(0, 5))
    if not count:
        return canvas
    size = canvas.shape[0]
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(count):
        points = [tuple(p) for p in rng.uniform(0, size, size=(2, 2)).tolist()]
        fill = tuple(int(c) for c in rng.integers(0, 256, size=3))
        draw.line(points, fill=fill, width=int(rng.integers(1, 4)))
    return np.asarray(img, dtype=np.float32)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A size x size x 3 float32 texture in [0, 255]."""
    canvas = PATTERNS[rng.integers(len(PATTERNS))](rng, size)
    if rng.random() < 0.5:
        other = PATTERNS[rng.integers(len(PATTERNS))](rng, size)
        alpha = rng.uniform(0.2, 0.5)
        canvas = canvas * (1 - alpha) + other * alpha
    canvas = clutter_lines(rng, canvas)
    sigma = np.float32(rng.uniform(2, 10))
    noise = rng.standard_normal(size=canvas.shape, dtype=np.float32) * sigma
    return np.clip(canvas + noise, 0, 255)
