"""Test helper (a uniquely named module: pytest keeps several `conftest` modules)."""

import numpy as np


def scramble_weights(model, seed=0):
    """Random weights and BN statistics of unit scale, so outputs are far from zero."""
    rng = np.random.default_rng(seed)
    for var in model.weights:
        name = var.name
        if "moving_variance" in name or "gamma" in name:
            value = rng.uniform(0.5, 1.5, var.shape)
        elif "moving_mean" in name or "beta" in name or "bias" in name:
            value = rng.normal(0, 0.1, var.shape)
        else:
            fan_in = int(np.prod(var.shape[:-1])) or 1
            value = rng.normal(0, np.sqrt(1.0 / fan_in), var.shape)
        var.assign(value.astype(np.float32))
