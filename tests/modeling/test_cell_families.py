"""One decoder for every cell family: builds at 320 and 256, serialises, No-SDO order,
NAS-FPN block semantics, quantization-aware copies. (Cost relations: test_baseline_costs.)"""

import hashlib
import json

import numpy as np
import pytest
import tensorflow as tf

from mnas_tf import cost
from mnas_tf.arch import load_architecture
from mnas_tf.modeling.layers import NASFPNBlock, SDOResample
from mnas_tf.modeling.mnasfpn import MnasFPN


def _specs(size, channels=(32, 96, 320)):
    return {str(l): [None, size // 2 ** l, size // 2 ** l, c]
            for l, c in zip((3, 4, 5), channels)}


def _inputs(specs, seed=0):
    rng = np.random.default_rng(seed)
    return {k: tf.constant(rng.normal(size=[1] + v[1:]).astype(np.float32))
            for k, v in specs.items()}


FAMILY_SPECS = ["mnasfpn_nosdo", "mnasfpn_noexpand", "conn_search", "nasfpnlite"]


@pytest.mark.parametrize("size", [320, 256])
@pytest.mark.parametrize("architecture", FAMILY_SPECS)
def test_every_family_builds_at_320_and_256(architecture, size):
    spec = load_architecture(architecture)
    decoder = MnasFPN(_specs(size), architecture)
    assert sorted(decoder.output_specs, key=int) == [str(l) for l in spec.levels]
    for level in spec.levels:
        side = -(-size // 2 ** level)
        assert decoder.output_specs[str(level)].as_list() == [None, side, side, spec.channels]


def test_published_nasfpn_cell_builds_levels_3_to_7_at_256():
    spec = load_architecture("nasfpn").replace(channels=16, repeats=2)
    decoder = MnasFPN(_specs(256), spec)
    out = decoder(_inputs(_specs(256)))
    assert {k: v.shape[1] for k, v in out.items()} == {"3": 32, "4": 16, "5": 8, "6": 4,
                                                      "7": 2}
    # P5 is recycled into the level-5 output block, P7 into the level-7 one
    cell = decoder.get_layer("cell_0")
    assert cell.block(4).get_config()["input_levels"] == [3, 4, 5]
    assert cell.block(5).get_config()["input_levels"] == [4, 5, 7]


@pytest.mark.parametrize("architecture", FAMILY_SPECS + ["nasfpn"])
def test_every_family_round_trips_through_json_config(architecture):
    spec = load_architecture(architecture)
    if spec.family == "nasfpn" and spec.max_level == 7:
        spec = spec.replace(channels=16, repeats=1)
    specs = _specs(128, (16, 24, 32))
    decoder = MnasFPN(specs, spec)
    config = json.loads(json.dumps(decoder.get_config()))
    assert config["architecture"] == spec.to_dict()
    clone = MnasFPN.from_config(config)
    assert clone.get_config() == decoder.get_config()
    clone.set_weights(decoder.get_weights())
    x = _inputs(specs)
    for level, value in decoder(x).items():
        np.testing.assert_allclose(clone(x)[level], value, atol=1e-5)


def test_no_sdo_runs_the_1x1_before_pooling_at_the_input_resolution():
    layer = SDOResample(input_level=3, output_level=4, filters=32, sdo=False)
    assert layer(tf.zeros([1, 8, 8, 16])).shape == (1, 4, 4, 32)
    order = [type(l).__name__ for l in layer._flatten_layers(include_self=False,
                                                             recursive=False)]
    assert order == ["Conv2D", "BatchNormalization", "MaxPooling2D"]
    assert cost.count_madds(layer, (1, 8, 8, 16)) == 8 * 8 * 16 * 32
    with_sdo = SDOResample(input_level=3, output_level=4, filters=32)
    with_sdo(tf.zeros([1, 8, 8, 16]))
    assert [w.name.split("/", 1)[1] for w in layer.weights] == \
        [w.name.split("/", 1)[1] for w in with_sdo.weights]


def test_sdo_keeps_the_published_variable_names():
    """Float checkpoints of the published head stay loadable: same variables, same names."""
    decoder = MnasFPN(_specs(128), "mnasfpn")
    # fingerprint of (name, shape) of every variable, in order, computed with the code
    # before the cell families existed (commit b6771aa)
    variables = [(w.name, tuple(w.shape)) for w in decoder.weights]
    assert len(variables) == 325
    assert hashlib.sha1(repr(variables).encode()).hexdigest() == \
        "3917ef30a79f1290972add7c06fe04d5cc93f714"
    names = sorted(w.name for w in decoder.get_layer("cell_1").block(3).weights)
    assert names[:6] == [
        "cell_1/block_3/bn/beta:0", "cell_1/block_3/bn/gamma:0",
        "cell_1/block_3/bn/moving_mean:0", "cell_1/block_3/bn/moving_variance:0",
        "cell_1/block_3/input_0/bn/beta:0", "cell_1/block_3/input_0/bn/gamma:0"]
    assert "cell_1/block_3/separable_conv/depthwise_kernel:0" in names


def test_nasfpn_block_is_global_attention_then_relu_conv_bn():
    block = NASFPNBlock(input_levels=[3, 4, 4], level=4, channels=8, merge="attention")
    fine, coarse, recycled = (tf.random.normal([1, 8, 8, 8]), tf.random.normal([1, 4, 4, 8]),
                              tf.random.normal([1, 4, 4, 8]))
    out = block([fine, coarse, recycled], training=False)
    pooled = tf.nn.max_pool2d(fine, 2, 2, "SAME")
    gate = tf.sigmoid(tf.reduce_max(coarse, axis=[1, 2], keepdims=True))
    merged = tf.nn.relu(coarse + pooled * gate + recycled)
    expected = block._bn(block._conv(merged), training=False)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert type(block._conv).__name__ == "SeparableConv2D"
    full = NASFPNBlock(input_levels=[4, 5], level=4, channels=8, separable=False)
    assert full([coarse, tf.random.normal([1, 2, 2, 8])]).shape == (1, 4, 4, 8)
    assert type(full._conv).__name__ == "Conv2D" and full._conv.kernel_size == (3, 3)


@pytest.mark.parametrize("architecture", ["nasfpnlite", "mnasfpn_nosdo"])
def test_family_decoders_have_a_quantization_aware_version(architecture):
    import tf_keras

    from mnas_tf.modeling.quantize import _quantized_copy, is_quantizer_variable
    specs = _specs(128, (16, 24, 32))
    decoder = MnasFPN(specs, architecture)
    qat = _quantized_copy(decoder, lambda d: d({k: tf_keras.Input(v[1:])
                                                for k, v in specs.items()}))
    assert any(is_quantizer_variable(w) for w in qat.weights)
    float_weights = [w for w in qat.weights if not is_quantizer_variable(w)]
    assert len(float_weights) == len(decoder.weights)
    for a, b in zip(decoder.weights, float_weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = _inputs(specs)
    want, got = decoder(x, training=False), qat(x, training=False)
    for level, value in want.items():
        assert got[level].shape == value.shape and np.isfinite(got[level]).all()
        assert not np.allclose(value, got[level], atol=1e-7)  # fake-quant is applied
