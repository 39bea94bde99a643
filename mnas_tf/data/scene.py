"""Compose one synthetic detection image and its COCO-style boxes.

Sizes are drawn per COCO scale bucket (small < 32^2 <= medium < 96^2 <=
large, measured as pixel area like COCO's `area`), so every pyramid level of
a multi-scale head has work to do. Objects are painted in order over a label
mask; an object is annotated only if at least `min_visible` of its pixels
survive the objects painted after it, and its box is the box of its visible
pixels, as in COCO.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from mnas_tf.data import shapes, textures

# Pixel-area ranges per COCO bucket, kept clear of the 32^2 / 96^2 borders.
SMALL = (80.0, 900.0)
MEDIUM = (1300.0, 8500.0)
LARGE_MIN = 10500.0
ASPECT_RANGE = (0.7, 1.43)
NEAR_PROBABILITY = 0.4  # place next to an earlier object, to get occlusion
MIN_CONTRAST = 120.0  # RGB distance between object and local background


@dataclasses.dataclass(frozen=True)
class Box:
    """One annotated object: class index, [x, y, w, h] and visible pixel area."""

    category: int
    bbox: tuple[int, int, int, int]
    area: int


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _target_area(rng: np.random.Generator, category: int, size: int) -> float:
    """Pixel area from a uniformly chosen bucket that fits in the image."""
    # Largest area that still fits after aspect jitter and rotation.
    fit = shapes.FILL[shapes.NAMES[category]] * (0.85 * size) ** 2 * 0.6
    buckets = [SMALL]
    if fit > MEDIUM[0] * 1.5:
        buckets.append((MEDIUM[0], min(MEDIUM[1], fit)))
    if fit > LARGE_MIN * 1.5:
        buckets.append((LARGE_MIN, fit))
    low, high = buckets[int(rng.integers(len(buckets)))]
    return _log_uniform(rng, low, high)


def _contrasting_colour(rng: np.random.Generator, local_mean: np.ndarray) -> np.ndarray:
    candidates = rng.uniform(0, 255, size=(12, 3)).astype(np.float32)
    distance = np.linalg.norm(candidates - local_mean, axis=1)
    good = distance >= MIN_CONTRAST
    return candidates[int(np.argmax(good)) if good.any() else int(np.argmax(distance))]


def _position(rng: np.random.Generator, size: int, h: int, w: int,
              placed: list[tuple[int, int, int, int]]) -> tuple[int, int]:
    """Top-left corner: uniform, or near an earlier object's centre."""
    if placed and rng.random() < NEAR_PROBABILITY:
        y0, x0, ph, pw = placed[int(rng.integers(len(placed)))]
        spread = 0.5 * max(ph, pw, h, w)
        cy = y0 + ph / 2 + rng.normal(0, spread)
        cx = x0 + pw / 2 + rng.normal(0, spread)
    else:
        cy, cx = rng.uniform(0, size), rng.uniform(0, size)
    top = int(np.clip(round(cy - h / 2), 0, size - h))
    left = int(np.clip(round(cx - w / 2), 0, size - w))
    return top, left


def _paint(rng: np.random.Generator, canvas: np.ndarray, mask: np.ndarray,
           top: int, left: int) -> None:
    """Fill the mask with a shaded colour that stands out locally."""
    window = canvas[top:top + mask.shape[0], left:left + mask.shape[1]]
    colour = _contrasting_colour(rng, window[mask].mean(axis=0))
    ys, xs = np.nonzero(mask)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys) / max(mask.shape) - 0.5
    shade = (ramp * rng.uniform(0, 40)).astype(np.float32)[:, None]
    noise = rng.standard_normal(size=(len(ys), 3), dtype=np.float32) * np.float32(4)
    window[ys, xs] = np.clip(colour + shade + noise, 0, 255)


def render(rng: np.random.Generator, size: int, max_objects: int,
           min_visible: float = 0.5) -> tuple[np.ndarray, list[Box]]:
    """A (size, size, 3) uint8 image and the boxes of its visible objects."""
    canvas = textures.background(rng, size)
    label = np.zeros((size, size), dtype=np.int16)
    placed: list[tuple[int, int, int, int]] = []
    categories, full_areas = [], []
    for index in range(1, int(rng.integers(1, max_objects + 1)) + 1):
        category = int(rng.integers(len(shapes.NAMES)))
        side = math.sqrt(_target_area(rng, category, size) / shapes.FILL[shapes.NAMES[category]])
        aspect = math.sqrt(_log_uniform(rng, *ASPECT_RANGE))
        shape = shapes.make_shape(rng, category, side * aspect, side / aspect, 0.95 * size - 2)
        mask = shapes.rasterise(shape)
        top, left = _position(rng, size, *mask.shape, placed)
        _paint(rng, canvas, mask, top, left)
        label[top:top + mask.shape[0], left:left + mask.shape[1]][mask] = index
        placed.append((top, left, *mask.shape))
        categories.append(category)
        full_areas.append(int(mask.sum()))

    visible = np.bincount(label.ravel(), minlength=len(placed) + 1)
    boxes = []
    for index, ((top, left, h, w), category, full) in enumerate(
        zip(placed, categories, full_areas), start=1
    ):
        if visible[index] < min_visible * full:
            continue
        own = label[top:top + h, left:left + w] == index
        rows, cols = np.flatnonzero(own.any(axis=1)), np.flatnonzero(own.any(axis=0))
        bbox = (left + int(cols[0]), top + int(rows[0]),
                int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
        boxes.append(Box(category, bbox, int(visible[index])))
    return np.round(canvas).astype(np.uint8), boxes
