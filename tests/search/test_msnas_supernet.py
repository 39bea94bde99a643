"""The super-net: every valid path in one trace, same function as the child, labels."""

import numpy as np
import pytest
import tensorflow as tf

from mnas_tf.arch.msnas import FEATURE_STRIDES, EncoderSpec, MSNASSpec, valid_utilizations
from search.spaces.msnas import MSNASSpace
from search.evaluators.supernet.msnas import PathAnchors, PathTensors, SuperNet, label_flat_anchors

SIZE = 64


@pytest.fixture(scope="module")
def model_config():
    from mnas_tf.experiment import load_experiment
    return load_experiment("msnas_synthetic", [{"task": {"model": {
        "input_size": [SIZE, SIZE, 3], "head": {"num_convs": 1, "num_filters": 8}}}}]).task.model


@pytest.fixture(scope="module")
def supernet(model_config):
    tf.random.set_seed(0)
    net = SuperNet(3, 8, model_config)
    net.build_all((SIZE, SIZE))
    return net


def all_paths(num_blocks):
    space = MSNASSpace(num_blocks, 8)
    rng = np.random.default_rng(0)
    encoders = {space.sample_encoder(rng).strides for _ in range(2000)}
    assert len(encoders) == space.num_encoders()
    for strides in sorted(encoders):
        for fs in valid_utilizations(EncoderSpec(strides, 8).block_strides()):
            yield MSNASSpec.build(strides, 8, fs)


def test_every_valid_path_runs_in_one_trace_with_correct_shapes(supernet, model_config):
    num_anchors = len(model_config.anchor.aspect_ratios) * model_config.anchor.num_scales
    classes = model_config.num_classes
    forward = tf.function(lambda x, p: supernet(x, p, training=False), autograph=False)
    images = tf.random.normal([2, SIZE, SIZE, 3])
    paths = list(all_paths(3))
    assert len(paths) > 30
    for spec in paths:
        scores, boxes, _ = forward(images, PathTensors.of(spec).as_tuple())
        for g, s in enumerate(spec.feature_strides):
            key = str(g + 2)
            assert scores[key].shape == (2, SIZE // s, SIZE // s, classes * num_anchors), spec
            assert boxes[key].shape == (2, SIZE // s, SIZE // s, 4 * num_anchors), spec
    assert forward.experimental_get_tracing_count() == 1


def test_a_path_computes_exactly_its_stand_alone_child(supernet):
    # strides 4 | 8 | 4: the up-sampling block 2 adds block 0's lateral
    spec = MSNASSpec.build((1, 2, 0.5), 8, (4, 4, 8, 8, 8))
    assert spec.encoder.lateral_sources() == (None, None, 0)
    child = supernet.export_child(spec)
    images = tf.random.normal([2, SIZE, SIZE, 3])
    child_features = child(images, training=False)
    heads_child = supernet.head(child_features, training=False)
    heads_super = supernet(images, PathTensors.of(spec).as_tuple(), training=False)
    for key in heads_child[0]:  # the group levels (the encoder also returns its output)
        np.testing.assert_allclose(heads_super[0][key], heads_child[0][key], atol=1e-5)
        np.testing.assert_allclose(heads_super[1][key], heads_child[1][key], atol=1e-5)


@pytest.mark.parametrize("num_boxes", [0, 1, 3])
def test_flat_labelling_equals_model_garden_label_anchors(model_config, num_boxes):
    from official.vision.ops import anchor as mg_anchor
    anchors = PathAnchors(model_config, (SIZE, SIZE))
    strides = (4, 8, 8, 16, 32)
    per_group = anchors.per_group([FEATURE_STRIDES.index(s) for s in strides])
    flat = tf.concat(anchors.flat(tf.constant([FEATURE_STRIDES.index(s) for s in strides])), 0)
    rng = np.random.default_rng(num_boxes)
    yx = rng.uniform(0, 40, (num_boxes, 2))
    hw = rng.uniform(6, 30, (num_boxes, 2))
    boxes = tf.constant(np.concatenate([yx, yx + hw], 1), tf.float32)
    classes = tf.constant(rng.integers(1, 6, num_boxes), tf.int32)
    labeler = mg_anchor.AnchorLabeler(0.5, 0.5)
    cls_mg, box_mg, _, cls_w_mg, box_w_mg = labeler.label_anchors(
        per_group, tf.reshape(boxes, [-1, 4]), tf.reshape(classes, [-1, 1]))
    pad = 5 - num_boxes
    cls, box, cls_w, box_w = label_flat_anchors(
        labeler, flat, tf.pad(tf.reshape(boxes, [-1, 4]), [[0, pad], [0, 0]]),
        tf.pad(classes, [[0, pad]], constant_values=-1),
        tf.constant([1.0] * num_boxes + [0.0] * pad))
    flat_mg = lambda d, k: tf.concat([tf.reshape(v, [-1, k]) for v in d.values()], 0)  # noqa
    np.testing.assert_array_equal(cls, flat_mg(cls_mg, 1)[:, 0])
    np.testing.assert_allclose(box, flat_mg(box_mg, 4), atol=1e-5)
    np.testing.assert_array_equal(cls_w, cls_w_mg)
    np.testing.assert_array_equal(box_w, box_w_mg)
