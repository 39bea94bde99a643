"""The proxy-task API: a short child run, failures as results, shared pipelines."""

import dataclasses
import os

import pytest

from mnas_tf import proxy
from mnas_tf.proxy import FAILED, OK, ProxyConfig, train_and_evaluate


@pytest.fixture(scope="module")
def config(tiny_dataset):
    d = tiny_dataset
    return ProxyConfig(train_data=d.search_train_records, val_data=d.search_val_records,
                       val_annotations=d.search_val_annotations, train_steps=4, batch_size=4,
                       input_size=128, steps_per_check=2, eval_batch_size=8)


def test_child_trains_and_is_scored(config):
    result = train_and_evaluate("mnasfpn", config, seed=1)
    assert result.status == OK, result.reason
    assert result.steps == 4 and result.final_loss > 0
    assert {"AP", "AP50", "AP75", "APs", "APm", "APl"} <= set(result.metrics)
    assert {"build_s", "first_chunk_s", "train_s", "eval_s"} <= set(result.timings)
    assert result.wall_time_s >= sum(result.timings[k] for k in ("build_s", "train_s", "eval_s"))
    engine = next(iter(proxy._ENGINES.values()))
    # a second child reuses the engine's pipelines (no second start-up)
    other = train_and_evaluate("mnasfpn_dm0.7", config, seed=2)
    assert other.status == OK and next(iter(proxy._ENGINES.values())) is engine
    # deterministic children: the same child and seed score the same after another child
    # trained in between (fresh, seeded batches; its own initialisation)
    again = train_and_evaluate("mnasfpn", config, seed=1)
    assert (again.final_loss, again.metrics) == (result.final_loss, result.metrics)


def test_spec_that_does_not_build_is_a_failed_result(config):
    bad = {"channels": 16, "blocks": [{"inputs": [0, 9], "level": 4, "expansion": 8}]}
    result = train_and_evaluate(bad, config)
    assert result.status == FAILED
    assert result.reason.startswith("build failed: ArchitectureError: block 0, field 'inputs'")


def test_nan_loss_is_a_failed_result(config):
    nan = dataclasses.replace(config, params_override=(
        {"task": {"losses": {"focal_loss_gamma": float("nan")}}},))
    result = train_and_evaluate("mnasfpn", nan)
    assert result.status == FAILED and result.reason == "loss is nan at step 2"


def test_warm_start_is_trained_once_then_children_start_from_it_frozen(
        config, tmp_path, monkeypatch):
    import tensorflow as tf

    from mnas_tf import warm_start
    monkeypatch.setenv("MNAS_TF_CACHE", str(tmp_path / "cache"))
    cfg = dataclasses.replace(config, train_steps=2, warm_start_steps=2, freeze_backbone=True,
                              metric="AP50", eval_score_threshold=1e-3)
    assert warm_start.cached_checkpoint(cfg) is None
    engine = proxy._ENGINES.get(config.data_key()) or proxy.ProxyEngine(config)
    prefix = engine.with_warm_start(cfg).init_checkpoint
    assert prefix == warm_start.cached_checkpoint(cfg)
    assert warm_start.read_manifest(os.path.dirname(prefix))["steps"] == 2

    # A child finds it on disk (no second training), starts from it and, frozen, ends its
    # training with exactly its weights, BN statistics included.
    monkeypatch.setattr(warm_start, "_train", lambda *a: pytest.fail("trained twice"))
    trained = str(tmp_path / "trained" / "backbone")
    result = engine.run("mnasfpn_dm0.7", seed=4, config=cfg, on_trained=lambda model: (
        tf.train.Checkpoint(backbone=model.backbone).write(trained)))
    assert result.status == OK, result.reason
    assert result.score == result.metrics["AP50"]
    saved, after = tf.train.load_checkpoint(prefix), tf.train.load_checkpoint(trained)
    keys = [k for k in saved.get_variable_to_shape_map() if k.startswith("backbone/")]
    assert len(keys) > 100 and set(keys) == {
        k for k in after.get_variable_to_shape_map() if k.startswith("backbone/")}
    for key in keys:
        assert (saved.get_tensor(key) == after.get_tensor(key)).all(), key


def test_neutral_warm_start_trains_sampled_heads_in_turn(config, tmp_path, monkeypatch):
    """warm_start_heads: N heads from the space share the steps and carry one backbone, so
    the warm start favours no single cell (the published one included)."""
    from mnas_tf import warm_start
    monkeypatch.setenv("MNAS_TF_CACHE", str(tmp_path / "cache"))
    published = dataclasses.replace(config, warm_start_steps=3, freeze_backbone=True)
    cfg = dataclasses.replace(published, warm_start_heads=2)
    heads = warm_start.warm_start_heads(cfg)
    assert len(heads) == 2 and heads[0] != heads[1] and heads == warm_start.warm_start_heads(cfg)
    assert warm_start.warm_start_heads(published) == ["mnasfpn"]
    engine = proxy._ENGINES.get(config.data_key()) or proxy.ProxyEngine(config)
    runs = []
    run = engine.run
    monkeypatch.setattr(engine, "run", lambda arch, **kw: runs.append(
        (arch, kw["config"].train_steps, kw["config"].init_checkpoint)) or run(arch, **kw))
    prefix = engine.with_warm_start(cfg).init_checkpoint
    assert [r[0] for r in runs] == heads and [r[1] for r in runs] == [1, 2]
    assert runs[0][2] is None and runs[1][2].endswith(".partial/backbone")  # carried over
    manifest = warm_start.read_manifest(os.path.dirname(prefix))
    assert manifest["heads"] == 2 and len(manifest["head_metrics"]) == 2
    assert warm_start.cached_checkpoint(published) is None  # a different cache entry


@pytest.mark.parametrize("field, value", [("train_steps", 0), ("batch_size", -1),
                                          ("input_size", 100), ("learning_rate", 0.0),
                                          ("metric", "mAP"), ("freeze_backbone", True),
                                          ("warm_start_steps", -1),
                                          ("warm_start_heads", 5),
                                          ("warm_start_space", "nope"),
                                          ("eval_score_threshold", 1.5)])
def test_invalid_proxy_config_is_refused(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(ProxyConfig(), **{field: value}).validate()


def test_a_short_run_learns(tiny_dataset):
    """Memorise a handful of images: loss falls and AP50 rises far above an untrained model.

    Held-out accuracy needs longer training; benchmarks/learning.py measures that.
    """
    d = tiny_dataset
    no_augmentation = {"task": {"train_data": {"parser": {
        "aug_rand_hflip": False, "aug_scale_min": 1.0, "aug_scale_max": 1.0}}}}
    config = ProxyConfig(train_data=d.search_val_records, val_data=d.search_val_records,
                         val_annotations=d.search_val_annotations, train_steps=200,
                         batch_size=8, input_size=128, steps_per_check=50, warmup_steps=20,
                         params_override=(no_augmentation,))
    untrained = train_and_evaluate("mnasfpn", dataclasses.replace(config, train_steps=1))
    trained = train_and_evaluate("mnasfpn", config)
    assert untrained.status == trained.status == OK
    assert trained.final_loss < 0.8 * untrained.final_loss
    assert trained.metrics["AP50"] >= 0.1
    assert trained.metrics["AP50"] >= untrained.metrics["AP50"] + 0.1
