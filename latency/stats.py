"""Summary statistics of per-run latencies, with benchmark_model's conventions.

std is the *population* std-dev (ddof=0), as TFLite's benchmark_model prints it, so host and
phone figures are comparable; percentiles use numpy's default linear interpolation.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def summarize_ms(samples_ms: Sequence[float]) -> dict[str, float]:
    """median/mean/std/p5/p95/min/max (ms) of at least one sample."""
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no latency samples to summarize")
    p5, median, p95 = np.percentile(x, [5, 50, 95])
    return {
        "median_ms": float(median),
        "mean_ms": float(x.mean()),
        "std_ms": float(x.std()),
        "p5_ms": float(p5),
        "p95_ms": float(p95),
        "min_ms": float(x.min()),
        "max_ms": float(x.max()),
    }
