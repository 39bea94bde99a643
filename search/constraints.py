"""Hard constraints on a search: the Select window of MSNAS Algorithm 1.

`Select(children, C)` keeps the children whose cost is within `tolerance` of the target.
The cost is analytic MAdds of an MSNAS architecture, by default the paper's Table 1
measure: encoder + RPN head at 832x1280 (`constraint.measure`, `constraint.input_size`).
The target is a number, a baseline experiment whose cost it is (measured once by
`mnas_tf.describe`), or the median of 1000 random architectures of the space; it is
resolved once and stored with the search, so a resume uses the same window.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np


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
    """Analytic MAdds of an MSNAS architecture under `constraint.measure` (checked against
    `mnas_tf.describe`'s traced count in tests/modeling). Anchors, classes and head widths
    come from the experiments' configs, never from constants here."""
    from mnas_tf.experiment import load_experiment
    from mnas_tf.modeling.msnas import encoder_madds, encoder_rpn_madds, head_madds
    c = config.constraint
    size = tuple(c.input_size)
    if c.measure == "encoder_rpn":
        model = load_experiment(c.experiment).task.model

        def encoder_rpn(spec) -> int:
            return encoder_rpn_madds(spec, size, model)
        return encoder_rpn
    s = config.supernet
    model = load_experiment(s.experiment).task.model
    classes = s.num_classes or model.num_classes
    anchors = model.anchor.num_scales * len(model.anchor.aspect_ratios)

    def encoder_head(spec) -> int:
        return encoder_madds(spec, size) + head_madds(
            spec.feature_strides, size, spec.encoder.channels, s.head_convs, s.head_filters,
            classes, anchors)
    return encoder_head


def baseline_madds(config) -> float:
    """The Table 1 cost (encoder + RPN MAdds) of the baseline experiment named by
    `constraint.target`, at `constraint.input_size`, as `mnas_tf.describe` counts it."""
    from mnas_tf.describe import describe
    c = config.constraint
    info = describe(c.target, tuple(c.input_size))
    if "encoder_rpn_madds" not in info:
        from search.config import SearchConfigError
        raise SearchConfigError(f"constraint.target {c.target!r} is not a two-stage "
                                f"detector: it has no encoder + RPN cost")
    return float(info["encoder_rpn_madds"])


def build_constraint(config, space, target: Optional[float] = None) -> Constraint:
    """The configured constraint; `target` (a stored, resolved one) wins over the config's."""
    madds = msnas_madds(config) if config.space == "msnas" else None
    c = config.constraint
    if c.type == "none":
        return Constraint(None, 0.0, madds)
    target = target if target is not None else c.target
    if isinstance(target, str):
        target = baseline_madds(config)
    if target is None:
        rng = np.random.default_rng(config.seed)
        target = float(np.median([madds(space.sample(rng)) for _ in range(1000)]))
    return Constraint(float(target), float(c.tolerance), madds)
