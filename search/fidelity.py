"""Does a cheap score rank architectures like an expensive one? The statistics.

A proxy (or a super-net) is worth searching with only if (a) its seed noise is small
against the differences between architectures, and (b) it orders architectures the way a
longer, more trustworthy training does. `seed_noise` answers (a) with a one-way ANOVA
(ICC(1), the signal-to-noise ratio); `rank_agreement` answers (b) with Kendall tau and
Spearman, each with a percentile bootstrap CI over architectures (the unit sampled).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np


def kendall_tau(x, y) -> float:
    """Kendall's tau-b (scipy), NaN when a side is constant."""
    from scipy import stats
    if len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


def spearman(x, y) -> float:
    """Spearman's rho (scipy), NaN when a side is constant."""
    from scipy import stats
    if len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def bootstrap_ci(statistic, x: Sequence[float], y: Sequence[float], resamples: int = 2000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of `statistic(x, y)`, resampling (x, y) pairs with
    replacement. Resamples where the statistic is undefined (a side constant) are
    dropped; (nan, nan) when fewer than half remain."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n < 3:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        v = statistic(x[idx].tolist(), y[idx].tolist())
        if not math.isnan(v):
            values.append(v)
    if len(values) < resamples / 2:
        return math.nan, math.nan
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def seed_noise(scores: Sequence[Sequence[float]]) -> dict:
    """Seed noise against the spread between architectures, from `scores[a]` = the scores
    of architecture a under each seed (NaN for a failed run; lists may differ in length).

    - seed_std: pooled within-architecture std, sqrt(MSW);
    - between_arch_std: std of the architectures' mean scores;
    - snr: between_arch_std / seed_std (the goal: > 3);
    - icc: ICC(1), the share of a single run's variance that is the architecture's:
      (MSB - MSW) / (MSB + (k - 1) MSW), k the mean number of seeds per architecture.
    """
    groups = [np.asarray([v for v in row if v is not None and not math.isnan(v)], float)
              for row in scores]
    groups = [g for g in groups if len(g)]
    means = np.array([g.mean() for g in groups])
    out = {"n_archs": len(groups), "seeds": [len(g) for g in groups],
           "seed_std": math.nan, "between_arch_std": math.nan, "snr": math.nan,
           "icc": math.nan}
    if len(groups) >= 2:
        out["between_arch_std"] = float(means.std(ddof=1))
    within = [g for g in groups if len(g) >= 2]
    if not within:
        return out
    dof_w = sum(len(g) - 1 for g in within)
    msw = sum(float(((g - g.mean()) ** 2).sum()) for g in within) / dof_w
    out["seed_std"] = math.sqrt(msw)
    if len(groups) >= 2:
        n = np.array([len(g) for g in groups], float)
        grand = float((n * means).sum() / n.sum())
        msb = float((n * (means - grand) ** 2).sum()) / (len(groups) - 1)
        k = float(n.mean())
        denominator = msb + (k - 1) * msw
        out["icc"] = (msb - msw) / denominator if denominator > 0 else math.nan
        out["snr"] = (out["between_arch_std"] / out["seed_std"] if out["seed_std"] > 0
                      else math.inf)
    return out


def rank_agreement(cheap: Sequence[float], reference: Sequence[float], resamples: int = 2000,
                   seed: int = 0) -> dict:
    """Kendall tau and Spearman between two scorings of the same architectures, each with
    a bootstrap 95% CI (architectures resampled)."""
    return {"n_archs": len(cheap),
            "kendall_tau": kendall_tau(cheap, reference),
            "kendall_tau_ci": list(bootstrap_ci(kendall_tau, cheap, reference, resamples,
                                                seed=seed)),
            "spearman": spearman(cheap, reference),
            "spearman_ci": list(bootstrap_ci(spearman, cheap, reference, resamples,
                                             seed=seed))}


def rank_of(values: Sequence[float], index: int) -> Optional[int]:
    """1-based rank of values[index] from the top (ties share the better rank)."""
    if index is None or index >= len(values) or math.isnan(values[index]):
        return None
    return 1 + sum(1 for v in values if not math.isnan(v) and v > values[index])
