"""The MSNAS encoder as a Model Garden backbone, its anchor layout, cost and training."""

import json

import numpy as np
import pytest
import tensorflow as tf

from mnas_tf.arch.msnas import MSNASSpec, load_msnas, msnas_names
from mnas_tf.cost import count_madds
from mnas_tf.modeling.msnas import (ENCODER_OUTPUT, GroupAnchorGenerator, MSNASEncoder,
                                    encoder_madds, head_madds)

TABLE7_ROW1 = (1, 2, 2, 1, 2, 1, 0.5, 1, 1, 0.5, 1, 1, 0.5)


def test_encoder_outputs_one_feature_per_group_at_its_stride():
    spec = MSNASSpec.build(TABLE7_ROW1, 8, (8, 8, 16, 16, 32))
    enc = MSNASEncoder(spec, input_specs=[None, 128, 128, 3])
    assert {k: v.as_list()[1:] for k, v in enc.output_specs.items()} == {
        "2": [16, 16, 8], "3": [16, 16, 8], "4": [8, 8, 8], "5": [8, 8, 8], "6": [4, 4, 8],
        ENCODER_OUTPUT: [32, 32, 8]}
    out = enc(tf.random.normal([1, 128, 128, 3]))
    np.testing.assert_array_equal(out["2"], out["3"])  # two groups share one feature map
    names = {l.name for l in enc.layers}
    # laterals at stage ends (blocks 8 <- 3, 11 <- 1, 12 <- 0); block 12 and its lateral
    # come after the last feature a head reads, and are built all the same (the paper's
    # encoder is the whole path), their output returned under ENCODER_OUTPUT
    assert {"lateral_3", "lateral_1", "lateral_0", "merge_8", "merge_11", "merge_12",
            "block_11_normal", "block_12_up"} <= names
    # the up block is "an interpolation operator followed by a convolution": one conv
    up = enc.get_layer("block_12_up")
    assert [w.shape.as_list() for w in up.trainable_weights if len(w.shape) == 4] == [
        [3, 3, 8, 8]]
    clone = MSNASEncoder.from_config(json.loads(json.dumps(enc.get_config())))
    assert clone.count_params() == enc.count_params()


@pytest.mark.parametrize("name", ["msnas_r18_top1", "msnas_r34_top4", "msnas_r50_top5"])
def test_shipped_paper_architectures_build(name):
    # one per table (all 15 are validated as specs in tests/arch/test_msnas_spec.py)
    assert name in msnas_names()
    spec = load_msnas(name)
    enc = MSNASEncoder(spec, input_specs=[None, 128, 128, 3])
    for g, s in enumerate(spec.feature_strides):
        assert enc.output_specs[str(g + 2)].as_list()[1:] == [128 // s, 128 // s,
                                                              spec.encoder.channels]


def test_group_anchors_keep_group_size_on_the_feature_stride():
    anchors = GroupAnchorGenerator((8, 8, 16, 16, 32), num_scales=1, aspect_ratios=[1.0],
                                   anchor_size=4.0)((64, 64))
    assert [tuple(anchors[k].shape) for k in "23456"] == [(8, 8, 4), (8, 8, 4), (4, 4, 4),
                                                          (4, 4, 4), (2, 2, 4)]
    for g, (key, stride) in enumerate(zip("23456", (8, 8, 16, 16, 32))):
        y0, x0, y1, x1 = anchors[key][0, 0].numpy()
        assert (y1 - y0) == pytest.approx(4.0 * 2 ** (g + 2))       # size of group g
        assert (y0 + y1) / 2 == pytest.approx(stride / 2)           # centre on stride grid
        assert float(anchors[key][0, 1, 1] - anchors[key][0, 0, 1]) == pytest.approx(stride)


def test_analytic_madds_equal_counted_madds():
    spec = load_msnas("msnas_r18_top2")  # 180 channels, upsampling, many laterals
    size = (192, 192)
    enc = MSNASEncoder(spec, input_specs=[None, *size, 3])
    assert encoder_madds(spec, size) == count_madds(enc, (1, *size, 3))
    from official.vision.modeling.heads.dense_prediction_heads import RetinaNetHead
    head = RetinaNetHead(2, 6, num_classes=7, num_anchors_per_location=9, num_convs=2,
                         num_filters=32)
    shapes = {k: (1, *v.as_list()[1:]) for k, v in enc.output_specs.items()}
    assert head_madds(spec.feature_strides, size, 180, 2, 32, 7, 9) == count_madds(
        lambda f: head(f), shapes)


def test_detector_trains_and_evaluates_through_model_garden(tiny_msnas_task):
    from mnas_tf.proxy import make_train_loop
    params, task, model, (images, labels) = tiny_msnas_task("msnas_synthetic", 4)
    # the parser labelled the group anchor layout: group g on the grid of stride s_g
    for key, s in zip("23456", (4, 8, 8, 16, 64)):
        assert labels["cls_targets"][key].shape[1:3] == (128 // s, 128 // s)
    outputs = model(images, training=True)
    assert {k: v.shape for k, v in outputs["cls_outputs"].items()} == {
        k: labels["cls_targets"][k].shape[:3] + (7 * 9,) for k in "23456"}
    optimizer = task.create_optimizer(params.trainer.optimizer_config, params.runtime)
    loop = make_train_loop(task, model, optimizer, task.build_metrics(training=True))
    loss = float(loop(iter(task.build_inputs(params.task.train_data)), tf.constant(2)))
    assert np.isfinite(loss) and loss > 0
    task.build_metrics(training=False)
    val = next(iter(task.build_inputs(params.task.validation_data)))
    logs = task.validation_step(val, model)
    state = task.aggregate_logs(None, logs)
    assert "AP" in task.reduce_aggregated_logs(state)
    # inference without passed anchors uses the group layout too
    detections = model(images[:1], training=False)
    assert detections["detection_boxes"].shape == (1, 100, 4)
