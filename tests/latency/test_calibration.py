"""The calibration model: per-op-class factors with a ridge prior, applied by the predictor."""

import numpy as np
import pytest

from latency.calibration import CLASSES, Calibration, fit, op_class
from latency.graph import parse_key


def _synthetic(n, factors, intercept, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(200.0, 4000.0, (n, len(CLASSES)))
    x[:, CLASSES.index("backbone")] = 9000.0  # the same backbone in every model
    x[:, CLASSES.index("other")] = 0.0  # a class no model uses
    truth = np.array([factors.get(c, 1.0) for c in CLASSES])
    y = intercept + x @ truth
    return x, y * (1 + rng.normal(0, noise, n))


def test_fit_recovers_known_factors_on_a_noise_free_case():
    """Known per-class factors and intercept are recovered; the backbone, constant across
    models, keeps factor 1 and its offset lands in the intercept; an unused class stays 1."""
    truth = {"conv1x1": 0.8, "depthwise": 1.5, "pool": 0.6, "add": 1.3, "se": 1.2,
             "resize": 0.9, "layout": 1.1, "conv": 1.0}
    x, y = _synthetic(16, truth, intercept=700.0)
    model = fit(x, y)
    for name, value in truth.items():
        assert model.factors[name] == pytest.approx(value, rel=1e-3)
    assert model.factors["backbone"] == 1.0 and model.factors["other"] == 1.0
    assert model.intercept_us == pytest.approx(700.0, rel=1e-3)
    assert model.loo_mape < 0.01
    assert np.allclose([model.apply(row) for row in x], y, rtol=1e-5)


def test_noise_pulls_the_factors_towards_the_plain_sum():
    """With noise larger than the class signal, leave-one-out picks a strong penalty and
    the factors stay near 1 (the sum-of-ops prior) instead of fitting the noise."""
    x, y = _synthetic(12, {"add": 1.02}, intercept=500.0, noise=0.08, seed=3)
    model = fit(x, y)
    assert model.ridge > 1e-6
    # the unpenalised least-squares factors wander much further from 1
    from latency.calibration import _ridge
    used = x.std(axis=0) > 0
    xs = x[:, used]
    free, _, _ = _ridge(xs, y, x.sum(axis=1), (xs / y[:, None]).std(axis=0), 1e-9)
    assert max(abs(model.factors[c] - 1.0) for c in CLASSES) < np.abs(free - 1.0).max()


def test_factors_stay_plausible_on_wild_data():
    """Latencies unrelated to the sums (a badly loaded machine): no factor leaves
    FACTOR_RANGE, whatever leave-one-out would prefer."""
    from latency.calibration import FACTOR_RANGE
    x, _ = _synthetic(12, {}, intercept=0.0, seed=5)
    y = np.random.default_rng(9).uniform(5e3, 9e4, 12)
    model = fit(x, y)
    assert all(FACTOR_RANGE[0] <= f <= FACTOR_RANGE[1] for f in model.factors.values())


def test_too_few_models_give_the_constant_model():
    x, y = _synthetic(2, {}, intercept=300.0)
    model = fit(x, y)
    assert set(model.factors.values()) == {1.0} and model.intercept_us == pytest.approx(300.0)
    with pytest.raises(ValueError):
        fit(x[:, :3], y)


def test_op_classes():
    cls = lambda text: op_class(parse_key(text))  # noqa: E731
    assert cls("CONV_2D|in=1x8x8x16|out=1x8x8x32|k=1x1|s=1|VALID|NONE|float32") == "conv1x1"
    assert cls("CONV_2D|in=1x8x8x16|out=1x8x8x16|k=3x3|s=1|SAME|NONE|int8") == "conv"
    assert cls("DEPTHWISE_CONV_2D|in=1x8x8x16|out=1x8x8x16|k=5x5|s=1|SAME|NONE|float32") \
        == "depthwise"
    assert cls("MEAN|in=1x8x8x16|out=1x1x1x16|NONE|float32") == "se"
    assert cls("DEQUANTIZE|in=1x10x4|out=1x10x4|NONE|int8") == "layout"
    assert cls("SUBGRAPH:MobileNetV2x1|in=1x64x64x3|out=|NONE|float32") == "backbone"


def test_predictor_applies_the_stored_factors(tmp_path):
    """A table's stored calibration scales each entry by its class factor: the prediction
    is the hand-computed weighted sum, and 'constant' still gives the old model."""
    from latency.ops import detector_ops
    from latency.table import LatencyPredictor
    from test_lut import FOUR_BLOCKS, SMALL, _hand_table, _hand_value, _spec
    spec = _spec(FOUR_BLOCKS)
    table = _hand_table(tmp_path, spec, SMALL, overhead_us=2.0, constant_us=500.0)
    factors = {c: 1.0 + 0.1 * i for i, c in enumerate(CLASSES)}
    table.set_meta("calibration", Calibration(factors, 250.0).to_dict())
    expected = 250.0 + sum((_hand_value(str(k)) - 2.0) * factors[op_class(k)]
                           for part in detector_ops(spec, SMALL).values() for k in part)
    assert LatencyPredictor(table, SMALL).predict(spec).total_ms == pytest.approx(
        expected / 1e3, rel=1e-9)
    old = LatencyPredictor(table, SMALL, calibration="constant").predict(spec)
    assert old.parts_ms["overhead"] == pytest.approx(0.5)
    sums = LatencyPredictor(table, SMALL).class_sums(spec)
    assert sum(sums) == pytest.approx(old.total_ms * 1e3 - 500.0)
