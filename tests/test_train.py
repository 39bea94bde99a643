"""`python -m mnas_tf.train`: a tiny train/eval round trip, resume after a kill, errors."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from export import tflite as export_tflite
from mnas_tf import train

SCHEDULE = ("trainer.steps_per_loop=2,trainer.summary_interval=2,"
            "trainer.checkpoint_interval=2,trainer.validation_interval={steps},"
            "trainer.train_steps={steps}")


def _step(model_dir):
    path = tf.train.latest_checkpoint(model_dir)
    return int(path.rsplit("-", 1)[1]) if path else 0


def test_train_and_eval_round_trip(tiny_overrides, tmp_path, capsys):
    model_dir = str(tmp_path / "run")
    argv = ["--experiment", "mnasfpn_synthetic", "--model-dir", model_dir,
            "--params-override", tiny_overrides,
            "--params-override", SCHEDULE.format(steps=4)]
    assert train.main(argv) == 0
    metrics = json.load(open(os.path.join(model_dir, "metrics.json")))
    assert {"AP", "AP50", "AP75", "APs", "APm", "APl"} <= set(metrics)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == metrics
    assert _step(model_dir) == 4
    assert os.path.isfile(os.path.join(model_dir, "params.yaml"))
    assert glob.glob(os.path.join(model_dir, "train", "events.out.tfevents.*"))
    # eval-only mode on the same checkpoint writes the same kind of metrics
    assert train.main(argv + ["--mode", "eval"]) == 0
    # the trained weights export to TFLite (checkpoint restore is checked object by object)
    capsys.readouterr()
    out = tmp_path / "trained.tflite"
    assert export_tflite.main(["--experiment", "mnasfpn_synthetic", "--params-override",
                               tiny_overrides, "--checkpoint", model_dir,
                               "--out", str(out)]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["input_size"] == [128, 128] and info["max_abs_diff"] <= 1e-4


def test_resume_after_kill_continues_from_the_checkpoint(tiny_overrides, tmp_path):
    model_dir = str(tmp_path / "run")
    base = [sys.executable, "-m", "mnas_tf.train", "--experiment", "mnasfpn_synthetic",
            "--model-dir", model_dir, "--mode", "train", "--params-override", tiny_overrides]
    proc = subprocess.Popen(base + ["--params-override", SCHEDULE.format(steps=1000)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while _step(model_dir) < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _step(model_dir)
    assert killed_at >= 4, "training never wrote a checkpoint"
    done = subprocess.run(base + ["--params-override", SCHEDULE.format(steps=killed_at + 2)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"restored from checkpoint: {model_dir}/ckpt-{killed_at}" in done.stderr
    assert f"training until step {killed_at + 2}" in done.stderr
    assert _step(model_dir) == killed_at + 2


@pytest.mark.parametrize("argv, needle", [
    (["--experiment", "nope"], "unknown experiment 'nope'"),
    (["--experiment", "mnasfpn_synthetic", "--params-override", "task.modle.num_classes=3"],
     "unknown config key 'task.modle'"),
    (["--experiment", "mnasfpn_synthetic", "--params-override",
      "trainer.steps_per_loop=3,trainer.summary_interval=50"],
     "trainer.summary_interval (50) must be a multiple of trainer.steps_per_loop (3)"),
    (["--config", "missing.yaml"], "config file missing.yaml does not exist"),
    (["--experiment", "mnasfpn_synthetic", "--params-override", "task.model.input_size=[1,"],
     "cannot parse the value"),
])
def test_config_errors_are_one_line(argv, needle, tmp_path, capsys):
    assert train.main(argv + ["--model-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_dotted_overrides_keep_lists_together():
    assert train.parse_override("a.b=[1,2,3],c=x") == {"a": {"b": [1, 2, 3]}, "c": "x"}
    assert train.parse_override("task: {a: 1}") == "task: {a: 1}"
