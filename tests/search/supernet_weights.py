"""Non-trivial super-net weights for equality tests: the stock heads start near zero (the
RPN's and RetinaNet's predictors at std 1e-5), where a path/child mismatch hides."""

import numpy as np


def randomise(model, seed: int = 0) -> None:
    """Kernels N(0, 1/fan_in) (at least 0.05), biases and BN beta N(0, 0.1), BN gamma
    U(0.7, 1.3), moving mean N(0, 0.2), moving variance U(0.5, 1.5)."""
    rng = np.random.default_rng(seed)
    for v in model.variables:
        name, shape = v.name, v.shape.as_list()
        if "moving_mean" in name:
            value = rng.normal(0, 0.2, shape)
        elif "moving_variance" in name:
            value = rng.uniform(0.5, 1.5, shape)
        elif "gamma" in name:
            value = rng.uniform(0.7, 1.3, shape)
        elif "beta" in name or "bias" in name:
            value = rng.normal(0, 0.1, shape)
        elif "kernel" in name:
            value = rng.normal(0, max(0.05, np.prod(shape[:-1]) ** -0.5), shape)
        else:
            continue
        v.assign(value.astype(np.float32))


def relative_error(a, b) -> float:
    """max |a - b| over the reference's scale (max |b|)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))
