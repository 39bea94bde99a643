"""Shared pytest setup: quiet TensorFlow and force Keras 2 (tf_keras)."""

import os

# Must happen before TensorFlow is imported anywhere.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def _scramble_weights(model, seed=0):
    """Random weights and BN statistics of unit scale, so outputs are far from zero."""
    rng = np.random.default_rng(seed)
    for var in model.weights:
        name = var.name
        if "moving_variance" in name or "gamma" in name:
            value = rng.uniform(0.5, 1.5, var.shape)
        elif "moving_mean" in name or "beta" in name or "bias" in name:
            value = rng.normal(0, 0.1, var.shape)
        else:
            fan_in = int(np.prod(var.shape[:-1])) or 1
            value = rng.normal(0, np.sqrt(1.0 / fan_in), var.shape)
        var.assign(value.astype(np.float32))


@pytest.fixture(scope="session")
def console_noise():
    """Lines a quiet console must never show: TensorFlow/XLA/absl C++ logs, the TFLite
    converter's and LiteRT's, and pycocotools' prints."""
    return ("cuda_platform", "cuInit", "Ignored output_format", "trackable_obj", "W0000",
            "I0000", "E0000", "absl::InitializeLog", "cpu_feature_guard", "cudart_stub",
            "loading annotations", "creating index", "index created", "DONE (t=",
            "Average Precision", "XNNPACK delegate")


@pytest.fixture(scope="session")
def scramble_weights():
    """`scramble_weights(model, seed=0)`: random weights and unit-scale BN statistics, so a
    TFLite-vs-Keras comparison compares outputs far from zero."""
    return _scramble_weights


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


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A 32/8-image synthetic dataset at 128x128, prepared to TFRecords once per session."""
    from mnas_tf.data import SyntheticConfig, default_dataset
    return default_dataset(SyntheticConfig(num_train=32, num_val=8, image_size=128, seed=3),
                           root=str(tmp_path_factory.mktemp("datasets")), progress=False)


@pytest.fixture(scope="session")
def tiny_overrides(tiny_dataset):
    """`--params-override` text that points mnasfpn_synthetic at the tiny dataset, 128 px."""
    d = tiny_dataset
    return (f"task.train_data.input_path={d.train_records},"
            f"task.validation_data.input_path={d.val_records},"
            f"task.annotation_file={d.val_annotations},task.model.input_size=[128,128,3],"
            f"task.train_data.global_batch_size=4,task.validation_data.global_batch_size=8")


@pytest.fixture(scope="session")
def tiny_msnas_arch():
    """An 8-channel MSNAS encoder (7 blocks, heads at strides 4, 8, 8, 16, 64) as JSON."""
    from mnas_tf.arch.msnas import MSNASSpec
    return MSNASSpec.build((1, 2, 2, 0.5, 2, 2, 2), 8, (4, 8, 8, 16, 64)).to_json()


@pytest.fixture(scope="session")
def tiny_msnas_task(tiny_dataset, tiny_msnas_arch):
    """`build(experiment, batch_size)`: an MSNAS experiment on the tiny dataset at 128 px
    with the `tiny_msnas_arch` encoder, as (params, task, model, first train batch)."""
    def build(experiment, batch_size):
        from official.core import task_factory
        from mnas_tf.experiment import load_experiment
        d = tiny_dataset
        params = load_experiment(experiment, [{"task": {
            "annotation_file": d.val_annotations,
            "model": {"input_size": [128, 128, 3],
                      "backbone": {"msnas": {"architecture": tiny_msnas_arch}}},
            "train_data": {"input_path": d.train_records, "global_batch_size": batch_size},
            "validation_data": {"input_path": d.val_records, "global_batch_size": 4}}}])
        task = task_factory.get_task(params.task)
        model = task.build_model()
        return params, task, model, next(iter(task.build_inputs(params.task.train_data)))
    return build
