"""The super-net's `experiment` optimizer (the experiment's schedule, stretched to the
super-net's steps), its SGD fine-tune, and the fine-tune batches on disk."""

import os

import numpy as np
import pytest
import tensorflow as tf

from search.config import SearchConfigError, load_config

STEPS = 48  # the paper's 48 epochs as 48 steps: warm-up 1 step, x0.1 at steps 42 and 47


def _config(**supernet):
    return load_config("msnas_default", {
        "space_overrides": {"num_blocks": 3, "channels": 8},
        "supernet": {"experiment": "msnas_supernet_paper", "optimizer": "experiment",
                     "input_size": 64, "batch_size": 2, "eval_batch_size": 2,
                     "max_eval_batches": 1, "head_filters": 8, "steps": STEPS,
                     "finetune_steps": 3, "finetune_batches": 2, **supernet}})


def _schedule(optimizer_config):
    from official.modeling.optimization import OptimizerFactory
    return OptimizerFactory(optimizer_config).build_learning_rate()


@pytest.fixture(scope="module")
def config():
    return _config()


@pytest.fixture(scope="module")
def trainer(config):
    from search.evaluators.supernet import training
    from search.spaces import get_space
    return training.build_trainer(config, get_space(config.space, config.space_overrides))


@pytest.fixture(scope="module")
def specs(config):
    from search.spaces import get_space
    space = get_space(config.space, config.space_overrides)
    rng = np.random.default_rng(3)
    found = {}
    while len(found) < 2:
        spec = space.sample(rng)
        found.setdefault(space.arch_hash(spec), spec)
    return list(found.values())


def test_scaled_schedule_is_model_gardens_schedule_at_the_supernets_length():
    from mnas_tf.configs.fasterrcnn import COCO_TRAIN_IMAGES, paper_schedule
    from search.evaluators.supernet.msnas import scaled_schedule
    steps_per_epoch = COCO_TRAIN_IMAGES // 32
    paper = paper_schedule(steps_per_epoch, 48)
    scaled = scaled_schedule(paper, 480 / (steps_per_epoch * 48))
    expected = paper_schedule(10, 48)  # 480 steps: 10 per epoch
    assert scaled.learning_rate.stepwise.boundaries == [420, 470]
    assert scaled.warmup.linear.warmup_steps == 10
    got, want = _schedule(scaled), _schedule(expected)
    for step in (0, 5, 10, 200, 420, 421, 470, 471, 479):
        np.testing.assert_allclose(float(got(step)), float(want(step)), rtol=1e-6)
    np.testing.assert_allclose([float(got(s)) for s in (0, 10, 421, 471)],
                               [0.00125, 0.04, 0.004, 0.0004], rtol=1e-6)
    assert paper.learning_rate.stepwise.boundaries == [steps_per_epoch * 42,
                                                       steps_per_epoch * 47]  # unchanged


def test_experiment_optimizer_follows_the_scaled_schedule(trainer):
    from mnas_tf.configs.fasterrcnn import paper_schedule
    from search.evaluators.supernet.msnas import learning_rate_now
    want = _schedule(paper_schedule(1, 48))  # 48 super-net steps: 1 per epoch
    iterations = trainer.optimizer.iterations
    start = int(iterations)
    try:
        for step in (0, 1, 20, 42, 43, 47, 48):
            iterations.assign(step)
            np.testing.assert_allclose(learning_rate_now(trainer.optimizer),
                                       float(want(step)), rtol=1e-6)
    finally:
        iterations.assign(start)
    assert type(trainer.optimizer).__name__ == "SGD"
    assert float(trainer.optimizer.momentum) == pytest.approx(0.9)
    assert trainer.task.task_config.losses.l2_weight_decay == 1e-4


def test_checkpoint_restores_the_optimizer_and_its_schedule_step(trainer, specs, tmp_path):
    from search.evaluators.supernet.msnas import learning_rate_now
    batch = next(trainer.engine._train_iterator)
    for _ in range(2):
        trainer.step(specs[0], batch)
    step = tf.Variable(2, dtype=tf.int64)
    saved = trainer.snapshot()
    path = trainer.checkpoint(step).save(str(tmp_path / "ckpt"))
    iterations, lr = int(trainer.optimizer.iterations), learning_rate_now(trainer.optimizer)
    trainer.step(specs[1], batch)
    assert int(trainer.optimizer.iterations) == iterations + 1
    trainer.checkpoint(step).restore(path).assert_existing_objects_matched()
    assert int(trainer.optimizer.iterations) == iterations
    assert learning_rate_now(trainer.optimizer) == lr
    for old, new in zip(saved, trainer.snapshot()):
        np.testing.assert_array_equal(new, old)


def _score_with_fingerprint(trainer, spec, config):
    """(metrics, the fine-tuned weights) of one score: evaluate sees the fine-tuned net."""
    seen = {}
    evaluate = trainer.evaluate

    def recording(s):
        seen["weights"] = [v.numpy() for v in trainer.model.variables]
        return evaluate(s)

    trainer.evaluate = recording
    try:
        metrics, _ = trainer.score(spec, config.supernet.finetune_steps)
    finally:
        del trainer.evaluate
    return metrics, seen["weights"]


def test_a_candidates_score_does_not_depend_on_those_before(trainer, specs, config,
                                                           tmp_path):
    from search.evaluators.supernet.training import load_finetune_batches
    load_finetune_batches(trainer, config, str(tmp_path))
    a, b = specs
    before = trainer.snapshot()
    alone, alone_w = _score_with_fingerprint(trainer, b, config)
    _score_with_fingerprint(trainer, a, config)
    # a's fine-tune left momentum behind, which b's must not inherit
    assert any(np.any(v.numpy()) for v in trainer.finetune_optimizer.variables()[1:])
    after_a, after_a_w = _score_with_fingerprint(trainer, b, config)
    assert after_a == alone
    for x, y in zip(alone_w, after_a_w):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(alone_w, before))  # it fine-tuned
    for old, new in zip(before, trainer.snapshot()):  # the shared state is back
        np.testing.assert_array_equal(new, old)
    assert trainer.trace_counts() == {"train": 1, "finetune": 1}


def _arrays(batch) -> list:
    return [(np.asarray(t), np.asarray(t).dtype) for t in tf.nest.flatten(batch)]


def test_finetune_batches_round_trip_and_a_missing_one_is_rewritten(trainer, config,
                                                                   tmp_path):
    from search.evaluators.supernet import training
    batch = next(trainer.engine._train_iterator)
    path = str(tmp_path / "one.npz")
    training.write_batch(path, batch)
    back = training.read_batch(path)
    tf.nest.assert_same_structure(back, batch)
    for (x, dx), (y, dy) in zip(_arrays(back), _arrays(batch)):
        assert dx == dy
        np.testing.assert_array_equal(x, y)
    storage = training.finetune_storage(config)
    assert storage["bytes_per_batch"] == sum(x.nbytes for x, _ in _arrays(batch))
    assert storage["disk_bytes"] == 2 * storage["bytes_per_batch"]

    out = str(tmp_path / "out")
    assert not training.finetune_batches_ready(config, out)
    training.load_finetune_batches(trainer, config, out)
    first, second = training.finetune_paths(config, out)
    assert training.finetune_batches_ready(config, out)
    kept = [a for a, _ in _arrays(training.read_batch(first))]
    stamp = os.stat(first).st_mtime_ns
    os.remove(second)  # as if killed while writing the second
    training.load_finetune_batches(trainer, config, out)
    assert os.path.exists(second) and os.stat(first).st_mtime_ns == stamp
    assert sorted(os.listdir(os.path.dirname(first))) == ["batch_00000.npz",
                                                          "batch_00001.npz"]
    for x, (y, _) in zip(kept, _arrays(trainer.finetune_batches[0])):
        np.testing.assert_array_equal(x, y)
    assert len(trainer.finetune_batches) == 2


def test_paper_configs_use_the_experiments_optimizer_and_the_default_adam():
    from search.config import SupernetConfig
    assert SupernetConfig().optimizer == "adam"
    for name in ("msnas_default", "msnas_ppo"):
        assert load_config(name).supernet.optimizer == "adam"
    for name in ("msnas_r18", "msnas_r34", "msnas_r50"):
        s = load_config(name).supernet
        assert (s.optimizer, s.experiment) == ("experiment", "msnas_supernet_paper")
        assert s.finetune_learning_rate == 0.004 and s.finetune_steps == 100


def test_an_unknown_optimizer_is_a_one_line_error():
    with pytest.raises(SearchConfigError) as e:
        load_config("msnas_default", {"supernet": {"optimizer": "sgd"}})
    assert str(e.value) == "supernet.optimizer 'sgd' is unknown; valid: adam, experiment"
