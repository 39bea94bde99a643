"""The baselines train through the same pipeline: two steps of SSDLite (unpadded 128x128
images, levels 4-9, its own backbone, extra layers and predictor) on the tiny synthetic
dataset. (The cell families share the MnasFPN detector that tests/test_train.py trains.)"""

import os

import pytest
import tensorflow as tf

from mnas_tf import train

SMALL = ("task.model.num_classes=7,runtime.distribution_strategy=one_device,"
         "runtime.num_gpus=0,trainer.steps_per_loop=2,trainer.summary_interval=2,"
         "trainer.checkpoint_interval=2,trainer.train_steps=2,"
         "trainer.optimizer_config.learning_rate.cosine.decay_steps=2,"
         "trainer.optimizer_config.warmup.linear.warmup_steps=1")


@pytest.mark.parametrize("experiment", ["ssdlite_mobilenetv2"])
def test_baseline_trains_two_steps(experiment, tiny_overrides, tmp_path):
    model_dir = str(tmp_path / experiment)
    assert train.main(["--experiment", experiment, "--model-dir", model_dir, "--mode", "train",
                       "--params-override", tiny_overrides,
                       "--params-override", SMALL]) == 0
    path = tf.train.latest_checkpoint(model_dir)
    assert path and path.endswith("-2")
    assert os.path.isfile(os.path.join(model_dir, "params.yaml"))
