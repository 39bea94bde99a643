"""Backbone, predictor and the assembled detector built through Model Garden."""

import json

import numpy as np
import pytest
import tensorflow as tf

from mnas_tf.modeling.backbones import MobileNetPyramid
from mnas_tf.modeling.factory import build_raw_detector
from mnas_tf.modeling.heads import WeightSharedSeparableHead
from mnas_tf.modeling.mnasfpn import MnasFPN


def test_backbone_exposes_levels_3_to_5_without_the_classifier_conv():
    backbone = MobileNetPyramid("MobileNetV2", input_specs=[None, 320, 320, 3])
    assert {k: v.as_list()[1:] for k, v in backbone.output_specs.items()} == {
        "3": [40, 40, 32], "4": [20, 20, 96], "5": [10, 10, 320]}
    assert not any(w.shape[-1] == 1280 for w in backbone.weights)
    clone = MobileNetPyramid.from_config(json.loads(json.dumps(backbone.get_config())))
    assert clone.count_params() == backbone.count_params()


@pytest.mark.parametrize("model_id, channels", [("MobileNetV3Large", [40, 112, 160]),
                                                ("MobileNetV3Small", [24, 48, 96])])
def test_mobilenetv3_backbones_are_selectable(model_id, channels):
    backbone = MobileNetPyramid(model_id, input_specs=[None, 256, 256, 3])
    assert [backbone.output_specs[l][-1] for l in "345"] == channels
    MnasFPN(backbone.output_specs, "mnasfpn")  # the head accepts any widths


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown MobileNet model_id 'MobileNetV9'"):
        MobileNetPyramid("MobileNetV9")


def test_predictor_shares_one_tower_across_levels_and_outputs():
    head = WeightSharedSeparableHead(3, 6, num_classes=91, num_anchors_per_location=9)
    feats = {str(l): tf.random.normal([2, 2 ** (9 - l), 2 ** (9 - l), 48]) for l in range(3, 7)}
    scores, boxes, attributes = head(feats)
    assert attributes == {}
    assert scores["3"].shape == (2, 64, 64, 819) and boxes["6"].shape == (2, 8, 8, 36)
    names = [w.name for w in head.trainable_weights]
    assert sum("tower_conv_0" in n for n in names) == 2  # one depthwise + one pointwise
    assert sum("tower_bn_0_level" in n for n in names) == 2 * 4  # gamma+beta per level
    # same-shaped tower convs must not start identical
    assert not np.allclose(head._tower[1].depthwise_kernel.numpy(),
                           head._tower[2].depthwise_kernel.numpy())
    # prior 0.01: the class bias is -log(99)
    np.testing.assert_allclose(head._classes.bias.numpy(), -np.log(99.0), rtol=1e-6)
    clone = WeightSharedSeparableHead.from_config(json.loads(json.dumps(head.get_config())))
    clone(feats)
    assert clone.count_params() == head.count_params()


def test_reference_detector_through_model_garden(reference_experiment, reference_model):
    model = reference_model
    assert type(model.backbone).__name__ == "MobileNetPyramid"
    assert isinstance(model.decoder, MnasFPN)
    assert isinstance(model.head, WeightSharedSeparableHead)
    out = model(tf.zeros([1, 320, 320, 3]), training=True)
    assert {k: v.shape[1:] for k, v in out["cls_outputs"].items()} == {
        "3": (40, 40, 819), "4": (20, 20, 819), "5": (10, 10, 819), "6": (5, 5, 819)}
    raw = build_raw_detector(model, (320, 320))
    shapes = {k: tuple(v.shape) for k, v in raw.output.items()}
    assert shapes == {"raw_boxes": (1, 19125, 4), "raw_scores": (1, 19125, 91)}
    task = reference_experiment.task
    assert task.losses.focal_loss_gamma == 2.0 and task.losses.l2_weight_decay == 4e-5
    assert task.model.decoder.mnasfpn.l2_weight_decay == 1e-4
    assert task.model.anchor.anchor_size == 3.0 and task.model.norm_activation.norm_epsilon == 0.01
