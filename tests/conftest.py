"""Shared pytest setup: quiet TensorFlow and force Keras 2 (tf_keras)."""

import os

# Must happen before TensorFlow is imported anywhere.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def reference_experiment():
    """The registered published-MnasFPN experiment config (fresh copy per session)."""
    from mnas_tf.experiment import load_experiment
    return load_experiment("mnasfpn_mobilenetv2_coco")


@pytest.fixture(scope="session")
def reference_model(reference_experiment):
    """The published MnasFPN detector at 320x320, built once for the whole session."""
    from official.core import task_factory
    return task_factory.get_task(reference_experiment.task).build_model()
