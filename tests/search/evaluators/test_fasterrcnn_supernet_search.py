"""`supernet.detector: fasterrcnn`: the config switch, and the whole evolution search on the
two-stage super-net end to end on a tiny budget."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from search.config import SearchConfigError, load_config

TINY = """
space: msnas
space_overrides: {num_blocks: 5, channels: 8}
strategy: evolution
evaluator: supernet
budget: null
workers: 1
in_flight: 1
top_k: 2
latency: {source: none}
constraint: {type: madds, tolerance: 0.2}
supernet: {detector: fasterrcnn, input_size: 128, batch_size: 2, eval_batch_size: 8,
           max_eval_batches: 1, head_filters: 8, steps: 4, checkpoint_every: 2,
           finetune_steps: 1, finetune_batches: 1}
evolution: {population: 3, iterations: 2, max_attempts: 30, random_children: 1}
"""


def test_detector_switch_picks_its_experiment_and_is_validated():
    default = load_config("msnas_default")
    assert (default.supernet.detector, default.supernet.experiment) == (
        "retinanet", "msnas_synthetic")
    # a store from before the switch resumes: the default detector is not in its identity
    assert "detector" not in default.run_config()["supernet"]
    assert default.run_config()["supernet"]["experiment"] == "msnas_synthetic"
    two = load_config("msnas_default", sets=["supernet.detector=fasterrcnn"])
    assert two.supernet.experiment == "msnas_fasterrcnn_synthetic"
    assert two.run_config()["supernet"]["detector"] == "fasterrcnn"
    with pytest.raises(SearchConfigError, match="supernet.detector 'yolo' is unknown"):
        load_config("msnas_default", sets=["supernet.detector=yolo"])
    with pytest.raises(SearchConfigError, match="encoder_head counts the one-stage"):
        load_config("msnas_default", sets=["supernet.detector=fasterrcnn",
                                           "constraint.measure=encoder_head"])


def test_a_one_stage_experiment_is_refused_for_the_two_stage_detector():
    from search.evaluators.supernet.training import check_detector
    config = load_config("msnas_default", sets=["supernet.detector=fasterrcnn",
                                                "supernet.experiment=msnas_synthetic"])
    with pytest.raises(SearchConfigError, match="one-stage .* supernet.detector is fasterrcnn"):
        check_detector(config.supernet)
    check_detector(load_config("msnas_default",
                               sets=["supernet.detector=fasterrcnn"]).supernet)


def test_evolution_on_the_two_stage_supernet_end_to_end(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-m", "search.evolution", "--config", str(cfg),
                          "--out", str(out), "--quiet"], env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    with sqlite3.connect(out / "search.sqlite") as c:
        rows = c.execute("SELECT status, reward, error FROM trials").fetchall()
    assert rows and all(r[0] == "done" for r in rows), rows
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prepared"]["steps"] == 4 and summary["prepared"]["traces"] == 1
    assert summary["best"] is not None and 0.0 <= summary["best"]["map"] <= 1.0
    assert len(json.loads((out / "top_k.json").read_text())) == 2
