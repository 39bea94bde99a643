"""The two-stage super-net: a path computes its exported child, on non-trivial weights.

Every weight of the super-net is redrawn (kernels at std 1/sqrt(fan_in), so the RPN and
box head outputs are O(1), not the 1e-5-std start of the stock heads) and every BN
layer's moving statistics are randomised; then each of three paths with different
strides is compared with its stand-alone `MSNASFasterRCNN`. A 1% change of one lateral
kernel in the child must move the outputs by at least 100x the tolerance.
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.vision.modeling.layers import roi_generator
from official.vision.ops import anchor as mg_anchor

from mnas_tf.arch.msnas import FEATURE_STRIDES, MSNASSpec, valid_utilizations
from supernet_weights import randomise, relative_error
from search.evaluators.supernet.fasterrcnn import (FasterRCNNSuperNet, PathROIGenerator,
                                                   RpnPathLabeler, make_rcnn_path_step,
                                                   max_path_anchors)
from search.evaluators.supernet.msnas import PathAnchors, PathTensors

SIZE, CHANNELS = 128, 8
# three paths, three stride layouts; in each the block carrying a lateral feeds a head
PATHS = [((1, 2, 0.5), (4, 4, 8, 8, 8)),     # blocks at 4, 8, 4; lateral 0 -> block 2
         ((2, 0.5, 2), (4, 8, 8, 8, 8)),     # 8, 4, 8
         ((2, 2, 0.5), (8, 8, 16, 16, 16))]  # 8, 16, 8
RTOL = 1e-5  # of the output's scale (max |value|)


def _experiment():
    from mnas_tf.experiment import load_experiment
    return load_experiment("msnas_fasterrcnn_synthetic", [{"task": {"model": {
        "input_size": [SIZE, SIZE, 3], "rpn_head": {"num_filters": 8},
        "detection_head": {"num_filters": 8, "fc_dims": 16}}}}])


@pytest.fixture(scope="module")
def params():
    return _experiment()


@pytest.fixture(scope="module")
def supernet(params):
    tf.random.set_seed(0)
    net = FasterRCNNSuperNet(3, CHANNELS, params.task.model, (SIZE, SIZE))
    net.build_all()
    randomise(net)
    return net


def _spec(strides, feature_strides):
    spec = MSNASSpec.build(strides, CHANNELS, feature_strides)
    assert tuple(feature_strides) in {tuple(u) for u in
                                      valid_utilizations(spec.encoder.block_strides())}
    return spec


def _outputs(out, head):
    rows = {f"rpn_scores/{k}": v for k, v in out["rpn_scores"].items()}
    rows.update({f"rpn_boxes/{k}": v for k, v in out["rpn_boxes"].items()})
    for k in ("cls_outputs", "box_outputs", "detection_boxes", "detection_scores"):
        rows[k] = out[k]
    rows["head_on_fixed_rois/class"], rows["head_on_fixed_rois/box"] = head
    return rows


def _fixed_rois():
    """RoIs of 8..2048 px centred in the image: every group gets some (k_first 2 sends
    only RoIs over 448 px to group 2 and up; the crop clamps them to the map)."""
    from mnas_tf.modeling.fasterrcnn import roi_groups
    rng = np.random.default_rng(3)
    size = np.exp(rng.uniform(np.log(8), np.log(2048), (2, 60, 2)))
    centre = rng.uniform(0, SIZE, (2, 60, 2))
    rois = tf.constant(np.concatenate([centre - size / 2, centre + size / 2], -1),
                       tf.float32)
    assert set(roi_groups(rois, 2).numpy().ravel()) == set(range(5))
    return rois


def test_paths_equal_their_children_with_random_weights_and_bn_statistics(supernet):
    images = tf.random.stateless_normal([2, SIZE, SIZE, 3], seed=[1, 2])
    shape = tf.constant([[SIZE, SIZE]] * 2, tf.float32)
    rois = _fixed_rois()
    forward = tf.function(lambda x, p: (
        supernet(x, p, image_shape=shape, training=False),
        supernet.detection_head[0](supernet.roi_features(x, p, rois, training=False),
                                   training=False)), autograph=False)
    worst, faults = {}, {}
    for strides, fs in PATHS:
        spec = _spec(strides, fs)
        ours = _outputs(*forward(images, PathTensors.of(spec).as_tuple()))
        child = supernet.export_child(spec)

        def child_outputs():
            out = child(images, image_shape=shape, training=False)
            crops = child.roi_aligner(child.backbone(images, training=False), rois)
            return _outputs(out, child.detection_head[0](crops, training=False))

        theirs = child_outputs()
        assert child.roi_aligner.get_config()["feature_strides"] == list(fs)
        # the outputs are not trivial: O(1) RPN logits, distinct box-head rows
        assert np.std(ours["rpn_scores/2"]) > 0.1
        assert np.std(ours["head_on_fixed_rois/class"]) > 0.05
        for key in ours:
            assert ours[key].shape == theirs[key].shape, (spec, key)
            err = relative_error(ours[key], theirs[key])
            worst[key] = max(worst.get(key, 0.0), err)
            assert err <= RTOL, (strides, fs, key, err)
        # a 1% fault in one lateral kernel of the child breaks the equality by >= 100x
        merged, lateral = next((i, k) for i, k in enumerate(spec.encoder.lateral_sources())
                               if k is not None)
        group = str(2 + spec.head_blocks().index(merged))  # a group reading that block
        kernel = child.backbone.get_layer(f"lateral_{lateral}").trainable_variables[0]
        assert "kernel" in kernel.name
        kernel.assign(kernel * 1.01)
        faulty = child_outputs()
        for key in (f"rpn_scores/{group}", f"rpn_boxes/{group}", "head_on_fixed_rois/class",
                    "head_on_fixed_rois/box"):
            change = relative_error(ours[key], faulty[key])
            name = key.rsplit("/", 1)[0] if key.startswith("rpn") else key
            faults[name] = min(faults.get(name, np.inf), change)
            assert change >= 100 * RTOL, (strides, fs, key, change)
    assert forward.experimental_get_tracing_count() == 1
    print("worst relative error per output:", worst)
    print("smallest relative change from the 1% lateral fault:", faults)


@pytest.mark.parametrize("training", [True, False])
def test_proposal_layer_equals_model_garden_and_takes_dynamic_maps(params, training):
    config = params.task.model.roi_generator
    kwargs = dict(pre_nms_top_k=300, num_proposals=200, test_pre_nms_top_k=150,
                  test_num_proposals=100, nms_iou_threshold=config.nms_iou_threshold,
                  test_nms_iou_threshold=config.test_nms_iou_threshold)
    stock = roi_generator.MultilevelROIGenerator(**kwargs)
    ours = PathROIGenerator(**kwargs)
    rng = np.random.default_rng(0)
    sizes = {"2": 32, "3": 16, "4": 16, "5": 8, "6": 2}  # 2x2x3 < every k: min() matters
    anchors = PathAnchors(params.task.model, (SIZE, SIZE))
    boxes, scores, anchor_boxes = {}, {}, {}
    for g, (key, n) in enumerate(sizes.items()):
        scores[key] = tf.constant(rng.normal(0, 2, (2, n, n, 3)), tf.float32)
        boxes[key] = tf.constant(rng.normal(0, 0.3, (2, n, n, 12)), tf.float32)
        table = anchors._table[g][FEATURE_STRIDES.index(SIZE // n)]  # pylint: disable=protected-access
        anchor_boxes[key] = tf.tile(tf.reshape(table, [1, n, n, 12]), [2, 1, 1, 1])
    shape = tf.constant([[SIZE, SIZE], [SIZE - 20, SIZE]], tf.float32)
    expected = stock(boxes, scores, anchor_boxes, shape, training=training)
    # the same maps with their spatial sizes unknown to the trace
    dynamic = tf.function(lambda b, s, a: ours(b, s, a, shape, training=training),
                          input_signature=[{k: tf.TensorSpec([2, None, None, c])
                                            for k in sizes} for c in (12, 3, 12)])
    got = dynamic(boxes, scores, anchor_boxes)
    np.testing.assert_allclose(got[0], expected[0], atol=1e-5)
    np.testing.assert_allclose(got[1], expected[1], atol=1e-7)
    assert got[0].shape == (2, 200 if training else 100, 4)


@pytest.mark.parametrize("num_boxes", [0, 1, 3])
def test_rpn_labels_equal_model_garden_rpn_anchor_labeler(params, num_boxes):
    model = params.task.model
    parser = params.task.train_data.parser.replace(rpn_batch_size_per_im=10 ** 6)
    anchors = PathAnchors(model, (SIZE, SIZE))
    strides = (4, 8, 8, 16, 64)
    index = [FEATURE_STRIDES.index(s) for s in strides]
    per_group = anchors.per_group(index)
    flat = tf.concat(anchors.flat(tf.constant(index)), 0)
    rng = np.random.default_rng(num_boxes)
    yx = rng.uniform(0, 80, (num_boxes, 2))
    hw = rng.uniform(10, 48, (num_boxes, 2))
    gt = np.concatenate([yx, yx + hw], 1).reshape(-1, 4)
    pad = 4 - num_boxes
    gt_boxes = tf.constant(np.pad(gt, [[0, pad], [0, 0]], constant_values=-1), tf.float32)
    classes = np.array([*rng.integers(1, 6, num_boxes), *[-1] * pad], np.int32)
    gt_classes = tf.constant(classes)
    # everything sampled (a budget above the anchor count): the labels are deterministic
    stock = mg_anchor.RpnAnchorLabeler(parser.rpn_match_threshold,
                                       parser.rpn_unmatched_threshold,
                                       parser.rpn_batch_size_per_im, parser.rpn_fg_fraction)
    scores_mg, boxes_mg = stock.label_anchors(
        per_group, tf.constant(gt, tf.float32),
        tf.constant(classes[:num_boxes, None], tf.float32))
    labeler = RpnPathLabeler(parser, max_path_anchors(anchors))
    dynamic = tf.function(labeler, input_signature=[tf.TensorSpec([None, 4]),
                                                    tf.TensorSpec([4, 4]),
                                                    tf.TensorSpec([4], tf.int32)])
    scores, boxes = dynamic(flat, gt_boxes, gt_classes)
    flat_mg = lambda d, k: tf.concat([tf.reshape(v, [-1, k]) for v in d.values()], 0)  # noqa
    np.testing.assert_array_equal(scores, flat_mg(scores_mg, 1)[:, 0])
    np.testing.assert_allclose(boxes, flat_mg(boxes_mg, 4), atol=1e-5)
    # with the parser's budget, at most rpn_batch_size_per_im anchors are sampled
    budget = params.task.train_data.parser
    small = RpnPathLabeler(budget, max_path_anchors(anchors))
    scores, _ = small(flat, gt_boxes, gt_classes)
    sampled = int(tf.reduce_sum(tf.cast(scores >= 0, tf.int32)))
    assert sampled == budget.rpn_batch_size_per_im
    assert int(tf.reduce_sum(tf.cast(scores == 1, tf.int32))) <= (
        budget.rpn_fg_fraction * budget.rpn_batch_size_per_im)


def test_train_step_serves_every_path_in_one_trace(params, supernet):
    from official.core import task_factory
    task = task_factory.get_task(params.task)
    optimizer = tf_keras.optimizers.Adam(1e-3)
    step = make_rcnn_path_step(task, supernet, optimizer)
    images = tf.random.stateless_normal([2, SIZE, SIZE, 3], seed=[3, 4])
    labels = {"gt_boxes": tf.constant([[[8, 8, 40, 40], [20, 24, 80, 90], [-1] * 4],
                                       [[4, 30, 60, 100], [-1] * 4, [-1] * 4]], tf.float32),
              "gt_classes": tf.constant([[1, 2, -1], [3, -1, -1]], tf.int32),
              "image_info": tf.constant([[[SIZE, SIZE], [SIZE, SIZE], [1, 1], [0, 0]]] * 2,
                                        tf.float32)}
    untaken = supernet.choice_blocks[0][0]  # block 0 "up": no path below takes it
    before = [v.numpy() for v in untaken.variables]
    stem = supernet.stem.trainable_variables[0].numpy()
    losses = [float(step(images, labels, PathTensors.of(_spec(*p)).as_tuple()))
              for p in PATHS]
    assert all(np.isfinite(losses))
    assert step.experimental_get_tracing_count() == 1
    for old, new in zip(before, untaken.variables):
        np.testing.assert_array_equal(new.numpy(), old)
    assert not np.array_equal(supernet.stem.trainable_variables[0].numpy(), stem)


def test_weight_decay_covers_exactly_the_paths_layers(params):
    from search.evaluators.supernet.msnas import path_weight_decay
    l2 = 1e-2
    net = FasterRCNNSuperNet(3, CHANNELS, params.task.model, (SIZE, SIZE),
                             tf_keras.regularizers.l2(l2 / 2.0))
    net.build_all()
    path = PathTensors.of(_spec(*PATHS[0]))
    used = [net.stem, net.rpn_head, net.detection_head[0],
            *(net.choice_blocks[i][c] for i, c in enumerate(path.choices)),
            *(net.laterals[k] for k in path.lateral_sources if k >= 0)]
    kernels = [v for layer in used for v in layer.trainable_variables
               if "kernel" in v.name]
    expected = l2 / 2 * sum(np.sum(np.square(v.numpy()), dtype=np.float64) for v in kernels)
    decay = tf.function(lambda *p: path_weight_decay(net, p), autograph=False)
    np.testing.assert_allclose(float(decay(*path.as_tuple())), expected, rtol=1e-5)
    assert float(tf.add_n(net.losses)) > 1.2 * expected  # every branch decays more
