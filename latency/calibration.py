"""From summed op entries to end-to-end latency: per-op-class factors with a ridge prior.

Sum-of-ops plus one constant cannot fit both ends of a space (it overestimates small heads
and underestimates large ones), because a whole model runs some op classes faster or
slower than their single-op benchmarks (cache reuse between neighbours, XNNPACK fusing a
pad or an activation, one invoke instead of hundreds). The model here is

    latency = intercept + sum_k factor_k * (summed entries of op class k)

with every factor pulled towards 1 (the plain sum) by a ridge penalty on standardised
features, the penalty chosen by leave-one-out error. With few calibration models the fit
stays near the plain sum; with more it learns each class's factor. Linear in the entries,
so a predictor applies it by scaling each entry once (prediction stays one sum).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

# The op classes (issue 18: 1x1 conv, depthwise, pool, resize, add, SE, concat/reshape);
# the backbone subgraph is a class of its own. Anything else is "other".
CLASSES = ("backbone", "conv1x1", "conv", "depthwise", "pool", "resize", "add", "se",
           "layout", "other")
_BY_OP = {"DEPTHWISE_CONV_2D": "depthwise", "MAX_POOL_2D": "pool", "AVERAGE_POOL_2D": "pool",
          "RESIZE_NEAREST_NEIGHBOR": "resize", "RESIZE_BILINEAR": "resize", "ADD": "add",
          "MEAN": "se", "LOGISTIC": "se", "MUL": "se", "REDUCE_MAX": "se",
          "RESHAPE": "layout", "CONCATENATION": "layout", "QUANTIZE": "layout",
          "DEQUANTIZE": "layout"}
FACTOR_RANGE = (0.2, 5.0)  # a class running 5x slower or faster in a whole model is noise
LAMBDAS = (1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1e3, 1e6)


def op_class(key) -> str:
    """The calibration class of an op key (`latency.graph.OpKey`)."""
    if key.op.startswith("SUBGRAPH"):
        return "backbone"
    if key.op == "CONV_2D":
        return "conv1x1" if tuple(key.kernel) == (1, 1) else "conv"
    return _BY_OP.get(key.op, "other")


@dataclasses.dataclass
class Calibration:
    """intercept_us + sum(factor[class] * summed entries of the class), in microseconds."""

    factors: dict[str, float]
    intercept_us: float
    ridge: float = 0.0
    n: int = 0
    loo_mape: float = float("nan")  # leave-one-out error of the chosen penalty, percent

    @classmethod
    def constant(cls, intercept_us: float) -> "Calibration":
        """The old model: the plain sum plus one constant."""
        return cls({c: 1.0 for c in CLASSES}, float(intercept_us))

    def factor(self, cls_name: str) -> float:
        return self.factors.get(cls_name, 1.0)

    def apply(self, features: Sequence[float]) -> float:
        """Latency (us) of one model's per-class sums (ordered as CLASSES)."""
        return self.intercept_us + sum(self.factor(c) * x for c, x in zip(CLASSES, features))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        return cls(**data)


def _ridge(x: np.ndarray, y: np.ndarray, base: np.ndarray, scale: np.ndarray, lam: float):
    """Factors b (prior 1) and intercept c minimising the relative squared error
    sum((y - c - x b) / y)^2 + lam |scale * (b - 1)|^2, and the leave-one-out residuals
    (closed form, through the hat matrix of this weighted ridge). `base` is each model's
    plain sum over every class (classes not in `x` keep factor 1)."""
    n, k = x.shape
    w = 1.0 / y  # relative errors: each row divided by its own latency
    design = np.hstack([np.ones((n, 1)), x]) * w[:, None]
    target = (y - base) * w  # what the factors' departures from 1 must explain
    penalty = np.diag(np.concatenate([[0.0], lam * scale ** 2]))
    gram = design.T @ design + penalty
    solution = np.linalg.solve(gram, design.T @ target)
    hat = np.einsum("ij,ji->i", design, np.linalg.solve(gram, design.T))
    residual = target - design @ solution
    loo = residual / np.clip(1.0 - hat, 1e-9, None)  # relative LOO errors
    return 1.0 + solution[1:], float(solution[0]), loo


def fit(features: Sequence[Sequence[float]], measured_us: Sequence[float],
        lambdas: Sequence[float] = LAMBDAS) -> Calibration:
    """Ridge fit of per-class factors on calibration models' per-class sums (rows ordered
    as CLASSES) and their measured end-to-end latency; the penalty with the lowest
    leave-one-out relative error wins (the largest is, in effect, the plain sum plus a
    constant), among those whose factors all lie in FACTOR_RANGE: with few noisy models a
    weak penalty can score well on leave-one-out with absurd (even negative) factors. Classes whose sums do not vary between the models keep factor 1 (their
    difference from the sum is in the intercept)."""
    x = np.asarray(features, float)
    y = np.asarray(measured_us, float)
    if x.ndim != 2 or x.shape[1] != len(CLASSES) or len(y) != len(x):
        raise ValueError(f"features must be n x {len(CLASSES)} and match the measurements")
    if len(y) < 3:  # too few to learn factors: the plain sum and the median residual
        return dataclasses.replace(Calibration.constant(
            float(np.median(y - x.sum(axis=1))) if len(y) else 0.0), n=len(y))
    used = np.flatnonzero(x.std(axis=0) > 1e-9 * max(1.0, float(np.abs(x).max())))
    xs = x[:, used]
    # ridge on standardised relative features: a unit of penalty means the same per class
    scale = (xs / y[:, None]).std(axis=0) * np.sqrt(len(y))
    best = None
    for lam in lambdas:
        factors, intercept, loo = _ridge(xs, y, x.sum(axis=1), scale, lam)
        err = float(np.mean(np.abs(loo)) * 100)
        plausible = bool(np.all((factors >= FACTOR_RANGE[0]) & (factors <= FACTOR_RANGE[1])))
        if plausible and (best is None or err < best[0] - 1e-12):
            best = (err, lam, factors, intercept)
    if best is None:  # no penalty tried keeps the factors plausible: the plain sum
        return dataclasses.replace(Calibration.constant(float(np.median(y - x.sum(axis=1)))),
                                   n=len(y))
    err, lam, factors, intercept = best
    values = {c: 1.0 for c in CLASSES}
    for i, f in zip(used, factors):
        values[CLASSES[i]] = float(f)
    return Calibration(values, intercept, ridge=float(lam), n=len(y), loo_mape=err)


def class_sums(ops_us: Sequence[tuple]) -> list[float]:
    """Per-class sums (ordered as CLASSES) of (op key, entry us) pairs."""
    sums = dict.fromkeys(CLASSES, 0.0)
    for key, us in ops_us:
        sums[op_class(key)] += us
    return [sums[c] for c in CLASSES]
