"""SDO resampling, SE merge and the block: order of ops, shapes, serialisation."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from mnas_tf import cost
from mnas_tf.modeling.layers import MnasFPNBlock, SDOResample, SqueezeExciteMerge


def _sublayer_types(layer):
    return [type(l).__name__ for l in layer._flatten_layers(include_self=False, recursive=False)]


def test_finer_input_is_pooled_before_the_1x1():
    layer = SDOResample(input_level=3, output_level=4, filters=32)
    assert layer(tf.zeros([1, 8, 8, 16])).shape == (1, 4, 4, 32)
    assert _sublayer_types(layer) == ["MaxPooling2D", "Conv2D", "BatchNormalization"]
    # the 1x1 runs at the target (lower) resolution: 4*4 pixels * 16 in * 32 out
    assert cost.count_madds(layer, (1, 8, 8, 16)) == 4 * 4 * 16 * 32


def test_two_level_downsample_uses_3x3_stride_4_pool():
    layer = SDOResample(input_level=4, output_level=6, filters=8)
    assert layer(tf.zeros([1, 20, 20, 48])).shape == (1, 5, 5, 8)
    pool = layer._pool
    assert pool.pool_size == (3, 3) and pool.strides == (4, 4) and pool.padding == "same"


def test_coarser_input_gets_the_1x1_then_nearest_upsampling():
    layer = SDOResample(input_level=5, output_level=3, filters=32)
    x = tf.random.normal([1, 4, 4, 16])
    y = layer(x)
    assert y.shape == (1, 16, 16, 32)
    assert _sublayer_types(layer) == ["Conv2D", "BatchNormalization", "UpSampling2D"]
    assert cost.count_madds(layer, (1, 4, 4, 16)) == 4 * 4 * 16 * 32
    # nearest neighbour: every 4x4 patch repeats one pixel
    y = y.numpy()
    assert np.allclose(y[:, 0:4, 0:4], y[:, :1, :1])


def test_same_level_input_only_gets_the_1x1():
    layer = SDOResample(input_level=4, output_level=4, filters=8)
    assert layer(tf.zeros([1, 5, 5, 3])).shape == (1, 5, 5, 8)
    assert _sublayer_types(layer) == ["Conv2D", "BatchNormalization"]


def test_se_merge_gates_the_second_input():
    merge = SqueezeExciteMerge(16)
    a, b = tf.random.normal([2, 4, 4, 16]), tf.random.normal([2, 4, 4, 16])
    out = merge([a, b]).numpy()
    gate = (out - a.numpy()) / b.numpy()
    assert np.all((gate > 0) & (gate < 1))  # a sigmoid gate, per image and channel
    assert np.allclose(gate[0, 0, 0], gate[0, 3, 2], atol=1e-4)  # global, not per pixel
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        merge([a, b, a])


@pytest.mark.parametrize("merge", ["sum", "se"])
def test_block_shapes_and_config_round_trip(merge):
    block = MnasFPNBlock(input_levels=[3, 5], level=4, expansion=24, channels=8, merge=merge,
                         kernel=5, kernel_regularizer=tf_keras.regularizers.l2(1e-4))
    inputs = [tf.random.normal([1, 16, 16, 4]), tf.random.normal([1, 4, 4, 6])]
    assert block(inputs).shape == (1, 8, 8, 8)
    config = json.loads(json.dumps(block.get_config()))
    clone = MnasFPNBlock.from_config(config)
    clone(inputs)
    assert clone.get_config() == block.get_config()
    clone.set_weights(block.get_weights())
    np.testing.assert_allclose(clone(inputs), block(inputs), atol=1e-6)
    assert clone._conv.depthwise_kernel.shape == (5, 5, 24, 1)
    assert clone._conv.pointwise_regularizer is not None


def test_block_is_relu6_then_separable_then_linear_bn():
    block = MnasFPNBlock(input_levels=[4, 4], level=4, expansion=8, channels=4)
    block([tf.zeros([1, 2, 2, 3])] * 2)
    ops = _sublayer_types(block)
    assert ops[-2:] == ["SeparableConv2D", "BatchNormalization"]
    assert block._conv.activation.__name__ == "linear"
    # huge inputs are clipped at 6 before the separable conv: outputs stay bounded
    big = block([tf.fill([1, 2, 2, 3], 1e6)] * 2)
    assert np.abs(big.numpy()).max() < 1e4
