"""Hard constraints on a search: the Select window of MSNAS Algorithm 1.

`Select(children, C)` keeps the children whose cost is within `tolerance` of the target.
The cost is analytic MAdds (the MSNAS space: encoder + RetinaNet head at the super-net's
input size); a missing target becomes the median of 1000 random architectures of the
space, resolved once and stored with the search so a resume uses the same window.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np

# The MSNAS one-shot detector's head (issue 17 replaces it with Faster R-CNN's RPN):
# the synthetic dataset's 7 classes and 3 scales x 3 aspect ratios of anchors.
HEAD_CLASSES, HEAD_ANCHORS = 7, 9


@dataclasses.dataclass(frozen=True)
class Constraint:
    """`constraint(spec)`: whether a child passes Select; `madds(spec)`, its cost."""

    target: Optional[float]
    tolerance: float
    madds: Optional[Callable] = None

    def __call__(self, spec) -> bool:
        if self.target is None:
            return True
        return abs(self.madds(spec) - self.target) <= self.tolerance * self.target

    def cost(self, spec) -> Optional[float]:
        return None if self.madds is None else float(self.madds(spec))


def msnas_madds(config) -> Callable:
    """Analytic MAdds of an MSNAS encoder + the super-net's head (checked against
    cost.count_madds in tests/modeling)."""
    from mnas_tf.modeling.msnas import encoder_madds, head_madds
    s = config.supernet
    size = (s.input_size, s.input_size)

    def madds(spec) -> int:
        return encoder_madds(spec, size) + head_madds(
            spec.feature_strides, size, spec.encoder.channels, s.head_convs, s.head_filters,
            HEAD_CLASSES, HEAD_ANCHORS)
    return madds


def build_constraint(config, space, target: Optional[float] = None) -> Constraint:
    """The configured constraint; `target` (a stored, resolved one) wins over the config's."""
    madds = msnas_madds(config) if config.space == "msnas" else None
    c = config.constraint
    if c.type == "none":
        return Constraint(None, 0.0, madds)
    target = target if target is not None else c.target
    if target is None:
        rng = np.random.default_rng(config.seed)
        target = float(np.median([madds(space.sample(rng)) for _ in range(1000)]))
    return Constraint(float(target), float(c.tolerance), madds)
