"""configs/search/mnasfpn_paper.yaml: the paper's search setup loads and validates (it is
never run here), and its stepwise proxy schedule is what Model Garden builds."""

from mnas_tf.proxy import _schedule
from search.config import load_config


def test_paper_config_loads_with_the_papers_settings():
    config = load_config("mnasfpn_paper")
    assert config.space == "mnasfpn" and config.budget == 10000
    assert config.reward.w == -0.3 and config.latency.input_size == 320
    proxy = config.proxy
    assert proxy.input_size == 320 and proxy.batch_size == 64
    assert round(proxy.train_steps * 64 / 111_000) == 20  # ~20 epochs of search-train
    assert proxy.lr_schedule == "stepwise" and proxy.learning_rate == 0.04
    assert round(proxy.lr_boundaries[0] * 64 / 111_000) == 16  # x0.1 at epoch 16
    assert round(proxy.warmup_steps * 64 / 111_000) == 1


def test_stepwise_schedule_warms_up_from_zero_then_drops_tenfold():
    from official.modeling.optimization import OptimizerFactory
    from official.modeling.optimization.configs import optimization_config

    proxy = load_config("mnasfpn_paper").proxy
    schedule = _schedule(proxy)
    config = optimization_config.OptimizationConfig({"optimizer": {"type": "sgd"}, **schedule})
    lr = OptimizerFactory(config).build_learning_rate()
    assert float(lr(0)) == 0.0
    assert abs(float(lr(proxy.warmup_steps // 2)) - 0.02) < 1e-3
    assert abs(float(lr(proxy.warmup_steps + 10)) - 0.04) < 1e-6
    assert abs(float(lr(proxy.lr_boundaries[0] + 10)) - 0.004) < 1e-6
