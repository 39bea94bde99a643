"""SSDLite parts: MobileNetV2 taps, the extra layers and the per-map predictor."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.vision.modeling.backbones import mobilenet

from mnas_tf import cost
from mnas_tf.modeling.ssdlite import (MobileNetSSDLite, SSDLiteExtras, SSDLitePredictor,
                                      tap_ssdlite)


@pytest.fixture(scope="module")
def backbone_320():
    return MobileNetSSDLite(input_specs=[None, 320, 320, 3])


def test_taps_are_the_576_expansion_and_the_1280_conv(backbone_320):
    assert {k: v.as_list() for k, v in backbone_320.output_specs.items()} == {
        "4": [None, 20, 20, 576], "5": [None, 10, 10, 1280]}
    small = MobileNetSSDLite(input_specs=[None, 256, 256, 3])
    assert small.output_specs["4"].as_list() == [None, 16, 16, 576]


def test_taps_reuse_model_garden_mobilenet_without_computing_anything_twice(backbone_320):
    full = mobilenet.MobileNet("MobileNetV2", input_specs=tf_keras.layers.InputSpec(
        shape=[None, 320, 320, 3]), norm_epsilon=0.001)
    assert cost.count_madds(backbone_320, (1, 320, 320, 3)) == \
        cost.count_madds(full, (1, 320, 320, 3))
    assert cost.count_params(backbone_320) == cost.count_params(full)
    # on the same layer objects, level 5 is Model Garden's final conv output
    inputs, outputs = tap_ssdlite(full)
    tapped = tf_keras.Model(inputs, outputs)
    image = tf.random.uniform([1, 320, 320, 3], -1, 1)
    np.testing.assert_allclose(tapped(image)["5"], full(image)["6"], atol=1e-4)
    assert tapped(image)["4"].shape == (1, 20, 20, 576)


def test_extra_layers_halve_the_maps_down_to_1x1():
    specs = {"4": [None, 20, 20, 576], "5": [None, 10, 10, 1280]}
    extras = SSDLiteExtras(specs)
    assert {k: v.as_list()[1:] for k, v in extras.output_specs.items()} == {
        "4": [20, 20, 576], "5": [10, 10, 1280], "6": [5, 5, 512], "7": [3, 3, 256],
        "8": [2, 2, 256], "9": [1, 1, 128]}
    # 1x1 to 256 at 10x10, 3x3/2 depthwise, 1x1 to 512 at 5x5 for the first extra layer
    first = 10 * 10 * 1280 * 256 + 5 * 5 * 256 * 9 + 5 * 5 * 256 * 512
    assert cost.count_madds(extras, {k: [1] + v[1:] for k, v in specs.items()}) > first
    clone = SSDLiteExtras.from_config(json.loads(json.dumps(extras.get_config())))
    assert clone.get_config() == extras.get_config()


def test_predictor_is_per_map_depthwise_then_1x1():
    head = SSDLitePredictor(min_level=4, max_level=5, num_classes=3,
                            num_anchors_per_location=2)
    features = {"4": tf.zeros([1, 4, 4, 8]), "5": tf.zeros([1, 2, 2, 16])}
    scores, boxes, _ = head(features)
    assert scores["4"].shape == (1, 4, 4, 6) and boxes["5"].shape == (1, 2, 2, 8)
    # nothing shared across maps: per map 2 x (depthwise 3x3, BN gamma/beta, 1x1 + bias)
    per_map = lambda c: 2 * (9 * c + 2 * c) + (c * 8 + 8) + (c * 6 + 6)  # noqa: E731
    assert cost.count_params(head) == per_map(8) + per_map(16)
    np.testing.assert_allclose(tf.sigmoid(scores["4"]), 0.01, rtol=1e-4)
    assert SSDLitePredictor.from_config(head.get_config()).get_config() == head.get_config()
