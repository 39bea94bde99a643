"""Quantization-aware detectors: same layers, fake-quant placed, float weights carried over."""

import numpy as np
import pytest
import tf_keras

from mnas_tf.modeling.layers import MnasFPNBlock
from mnas_tf.modeling.quantize import (QuantizationError, _quantized_copy, is_quantizer_variable,
                                       quantize_detector)


@pytest.fixture(scope="module")
def small_models():
    from official.core import task_factory

    from mnas_tf.experiment import load_experiment
    params = load_experiment("mnasfpn_synthetic",
                             [{"task": {"model": {"input_size": [128, 128, 3]}}}])
    model = task_factory.get_task(params.task).build_model()
    return model, quantize_detector(model)


def test_float_weights_are_carried_over_one_to_one(small_models):
    model, qat = small_models
    for part in ("backbone", "decoder", "head"):
        float_weights = getattr(model, part).weights
        qat_weights = [w for w in getattr(qat, part).weights if not is_quantizer_variable(w)]
        assert len(qat_weights) == len(float_weights), part
        for a, b in zip(float_weights, qat_weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    # and fake-quant ranges were added to every part
    for part in ("backbone", "decoder", "head"):
        assert any(is_quantizer_variable(w) for w in getattr(qat, part).weights), part


def test_untrained_ranges_keep_outputs_close_to_float(small_models):
    from mnas_tf.modeling.factory import build_raw_detector
    model, qat = small_models
    image = np.random.default_rng(0).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    a = build_raw_detector(model, (128, 128))(image, training=False)["raw_scores"].numpy()
    b = build_raw_detector(qat, (128, 128))(image, training=False)["raw_scores"].numpy()
    assert not np.allclose(a, b, atol=1e-7)  # quantization is really applied ...
    assert np.abs(a - b).mean() < 0.05 * np.abs(a).mean()  # ... and only perturbs


def test_quantized_layers_round_trip_their_config():
    block = MnasFPNBlock([3, 4], level=4, expansion=16, channels=8, merge="se", quantized=True)
    block([tf_keras.Input((16, 16, 8)), tf_keras.Input((8, 8, 8))])
    config = block.get_config()
    assert config["quantized"] is True
    clone = MnasFPNBlock.from_config(config)
    assert clone.get_config() == config
    names = {w.name.split("/")[-1] for w in block.weights}
    assert any(n.startswith("output_max") for n in names)
    assert any("kernel_min" in n for n in names)


def test_layers_without_a_quantized_version_are_refused():
    with pytest.raises(QuantizationError, match="no quantization-aware version"):
        _quantized_copy(tf_keras.layers.Dense(3, name="plain_dense"), lambda layer: None)
