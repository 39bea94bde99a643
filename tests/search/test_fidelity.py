"""The proxy-fidelity statistics on cases with a known answer."""

import math

import numpy as np
import pytest

from search.fidelity import (bootstrap_ci, kendall_tau, rank_agreement, rank_of, seed_noise,
                             spearman)


def test_rank_correlations_known_values():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # one discordant pair of six: (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)
    assert spearman([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(0.8)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))


def test_bootstrap_ci_brackets_the_truth():
    x = list(range(12))
    assert bootstrap_ci(kendall_tau, x, x) == pytest.approx((1.0, 1.0))
    assert bootstrap_ci(kendall_tau, x, x[::-1]) == pytest.approx((-1.0, -1.0))
    # independent noise: the CI must contain 0 and be wide; a strong relation: above 0
    rng = np.random.default_rng(3)
    low, high = bootstrap_ci(kendall_tau, rng.normal(size=12), rng.normal(size=12))
    assert low < 0 < high and high - low > 0.5
    y = np.arange(12) + rng.normal(0, 1.5, 12)
    low, high = bootstrap_ci(kendall_tau, list(range(12)), y.tolist())
    assert 0 < low < kendall_tau(list(range(12)), y.tolist()) < high
    assert math.isnan(bootstrap_ci(kendall_tau, [1, 2], [1, 2])[0])  # too few to resample


def test_rank_agreement_has_both_statistics_with_cis():
    out = rank_agreement([1, 2, 3, 4, 5], [1, 2, 3, 5, 4])
    assert out["n_archs"] == 5
    assert out["kendall_tau"] == pytest.approx(0.8)
    assert out["spearman"] == pytest.approx(0.9)
    assert out["kendall_tau_ci"][0] <= 0.8 <= out["kendall_tau_ci"][1]


def test_seed_noise_exact_anova():
    # means 0..3, each seen as mean -+ 0.5: within var (ddof 1) = 0.5, var of means = 5/3
    scores = [[m - 0.5, m + 0.5] for m in range(4)]
    out = seed_noise(scores)
    msw, msb = 0.5, 2 * 5 / 3
    assert out["seed_std"] == pytest.approx(math.sqrt(msw))
    assert out["between_arch_std"] == pytest.approx(math.sqrt(5 / 3))
    assert out["icc"] == pytest.approx((msb - msw) / (msb + msw))
    assert out["snr"] == pytest.approx(math.sqrt(5 / 3) / math.sqrt(msw))
    assert out["n_archs"] == 4 and out["seeds"] == [2, 2, 2, 2]


def test_seed_noise_recovers_simulated_components():
    """Between-arch variance 4, seed variance 1: ICC(1) = 4 / 5."""
    rng = np.random.default_rng(0)
    true = rng.normal(0, 2, 400)
    scores = true[:, None] + rng.normal(0, 1, (400, 3))
    out = seed_noise(scores.tolist())
    assert out["seed_std"] == pytest.approx(1.0, abs=0.05)
    assert out["icc"] == pytest.approx(0.8, abs=0.04)


def test_seed_noise_skips_failed_runs_and_single_seeds():
    out = seed_noise([[1.0, float("nan"), 1.2], [2.0], [], [3.0, 3.2]])
    assert out["n_archs"] == 3 and out["seeds"] == [2, 1, 2]
    assert out["seed_std"] == pytest.approx(math.sqrt(0.02))  # pooled over the two pairs
    only_one = seed_noise([[1.0], [2.0], [3.0]])
    assert math.isnan(only_one["seed_std"]) and only_one["between_arch_std"] == pytest.approx(1)
    assert seed_noise([[1.0, 1.0], [2.0, 2.0]])["snr"] == math.inf


def test_rank_of_counts_from_the_top():
    assert rank_of([0.3, 0.1, 0.5], 0) == 2
    assert rank_of([0.3, 0.3, 0.5], 1) == 2  # ties share the better rank
    assert rank_of([0.3, float("nan")], 1) is None
