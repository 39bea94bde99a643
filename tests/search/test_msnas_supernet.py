"""The super-net: every valid path in one trace, same function as the child, labels."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from mnas_tf.arch.msnas import (FEATURE_STRIDES, STRIDE_CHOICES, EncoderSpec, MSNASSpec,
                                valid_utilizations)
from mnas_tf.modeling.msnas import block_name
from search.spaces.msnas import MSNASSpace
from search.evaluators.supernet.msnas import (PathAnchors, PathTensors, SuperNet,
                                              check_slots_found, label_flat_anchors,
                                              make_path_step, path_weight_decay, slots_of)

SIZE = 64


def _experiment():
    from mnas_tf.experiment import load_experiment
    return load_experiment("msnas_synthetic", [{"task": {"model": {
        "input_size": [SIZE, SIZE, 3], "head": {"num_convs": 1, "num_filters": 8}}}}])


@pytest.fixture(scope="module")
def model_config():
    return _experiment().task.model


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


def test_paths_equal_their_children_with_random_weights_and_bn_statistics(model_config):
    """The same on non-trivial weights (the head's predictors start at std 1e-5 above):
    every weight redrawn, BN statistics randomised, three stride layouts; a 1% change of
    one lateral kernel in the child moves the outputs by >= 100x the tolerance."""
    from supernet_weights import randomise, relative_error
    rtol = 1e-5  # of the output's scale
    tf.random.set_seed(2)
    net = SuperNet(3, 8, model_config)
    net.build_all((SIZE, SIZE))
    randomise(net)
    images = tf.random.stateless_normal([2, SIZE, SIZE, 3], seed=[5, 6])
    forward = tf.function(lambda x, p: net(x, p, training=False), autograph=False)
    for strides, fs in [((1, 2, 0.5), (4, 4, 8, 8, 8)), ((2, 0.5, 2), (4, 8, 8, 8, 8)),
                        ((2, 2, 0.5), (8, 8, 16, 16, 16))]:
        spec = MSNASSpec.build(strides, 8, fs)
        ours = forward(images, PathTensors.of(spec).as_tuple())
        child = net.export_child(spec)
        theirs = net.head(child(images, training=False), training=False)
        assert np.std(ours[0]["2"]) > 0.1  # O(1) logits, not the 1e-5-std start
        for o, t in zip(ours[:2], theirs[:2]):
            for key in t:
                assert relative_error(o[key], t[key]) <= rtol, (strides, key)
        merged, lateral = next((i, k) for i, k in enumerate(spec.encoder.lateral_sources())
                               if k is not None)
        group = str(2 + spec.head_blocks().index(merged))
        kernel = child.get_layer(f"lateral_{lateral}").trainable_variables[0]
        kernel.assign(kernel * 1.01)
        faulty = net.head(child(images, training=False), training=False)
        for o, t in zip(ours[:2], faulty[:2]):
            assert relative_error(o[group], t[group]) >= 100 * rtol, (strides, group)
    assert forward.experimental_get_tracing_count() == 1


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


# ------------------------------------------------------------------ path-only training
WARM_UP = [((2, 0.5, 2), (4, 4, 8, 8, 8))]  # gives block 0 "down" and block 1 "up" momentum
BLOCK0_NORMAL = [((1, 1, 2), (4, 4, 8, 8, 8)), ((1, 2, 0.5), (4, 4, 4, 8, 8)),
                 ((1, 2, 1), (4, 8, 8, 8, 8)), ((1, 1, 2), (4, 4, 4, 4, 8))]


def _path(strides, feature_strides) -> PathTensors:
    return PathTensors.of(MSNASSpec.build(strides, 8, feature_strides))


def _l2_supernet(model_config, l2):
    tf.random.set_seed(1)
    net = SuperNet(3, 8, model_config, tf_keras.regularizers.l2(l2 / 2.0))
    net.build_all((SIZE, SIZE))
    return net


def _batch():
    """Two images, deferred labels as DeferredLabeler passes them (3 boxes, padded)."""
    images = tf.random.stateless_normal([2, SIZE, SIZE, 3], seed=[0, 1])
    boxes = tf.constant([[[8, 8, 30, 30], [20, 24, 50, 60], [0, 0, 0, 0]],
                         [[4, 30, 40, 62], [0, 0, 0, 0], [0, 0, 0, 0]]], tf.float32)
    classes = tf.constant([[1, 2, -1], [3, -1, -1]], tf.int32)
    valid = tf.constant([[1, 1, 0], [1, 0, 0]], tf.float32)
    return images, {"box_targets": {"gt_boxes": boxes},
                    "cls_targets": {"gt_classes": classes}, "cls_weights": valid}


def _branches(net):
    return [b for blocks in net.choice_blocks for b in blocks] + list(net.laterals)


def _used_names(paths) -> set:
    names = set()
    for p in map(lambda a: _path(*a), paths):
        names |= {block_name(i, STRIDE_CHOICES[c]) for i, c in enumerate(p.choices)}
        names |= {f"lateral_{k}" for k in p.lateral_sources if k >= 0}
    return names


def _state(net, optimizer) -> dict:
    """{layer: (all its variables, its trainable variables' optimizer slots)} as arrays."""
    return {layer.name: ([v.numpy() for v in layer.variables],
                         [s.numpy() for v in layer.trainable_variables
                          for s in slots_of(optimizer, v)])
            for layer in (net.stem, net.head, *_branches(net))}


@pytest.fixture(scope="module")
def task():
    from official.core import task_factory
    return task_factory.get_task(_experiment().task)


def _direct_decay(net, path: PathTensors, l2: float) -> float:
    """l2/2 * sum(w^2) over the kernels of the path's stem, head, branches and laterals."""
    used = [net.stem, net.head, *(net.choice_blocks[i][c] for i, c in enumerate(path.choices)),
            *(net.laterals[k] for k in path.lateral_sources if k >= 0)]
    kernels = [v for layer in used for v in layer.trainable_variables if "kernel" in v.name]
    return l2 / 2 * sum(np.sum(np.square(v.numpy()), dtype=np.float64) for v in kernels)


class _RecordingTask:
    """The task, keeping the last step's auxiliary (weight-decay) loss in a variable."""

    def __init__(self, task):
        self.task, self.task_config = task, task.task_config
        self.aux = tf.Variable(0.0, trainable=False)

    def build_losses(self, outputs, labels, aux_losses=None):
        self.aux.assign(tf.reduce_sum(aux_losses))
        return self.task.build_losses(outputs, labels, aux_losses)


@pytest.fixture(scope="module")
def trained(task):
    """A super-net with L2 and Adam: one warm-up step, then steps with block 0 normal."""
    cfg = task.task_config
    l2 = cfg.losses.l2_weight_decay
    net = _l2_supernet(cfg.model, l2)
    optimizer = tf_keras.optimizers.Adam(1e-3, global_clipnorm=10.0)
    recording = _RecordingTask(task)
    step = make_path_step(recording, net, optimizer, PathAnchors(cfg.model, (SIZE, SIZE)))
    images, labels = _batch()
    for p in WARM_UP:
        step(images, labels, _path(*p).as_tuple())
    before = _state(net, optimizer)
    losses, decays = [], []
    for p in BLOCK0_NORMAL:
        expected = _direct_decay(net, _path(*p), l2)
        losses.append(float(step(images, labels, _path(*p).as_tuple())))
        decays.append((float(recording.aux), expected))
    return net, step, before, _state(net, optimizer), losses, decays


def test_untaken_branches_and_their_slots_stay_bit_for_bit(trained):
    net, _, before, after, losses, _ = trained
    assert all(np.isfinite(losses))
    untaken = {b.name for b in _branches(net)} - _used_names(BLOCK0_NORMAL)
    # never sampled (no momentum: L2 alone moved them) and sampled in the warm-up only
    assert {block_name(0, 0.5), "lateral_1", block_name(0, 2), block_name(1, 0.5)} <= untaken
    assert np.any(before[block_name(0, 2)][1][0])  # it has momentum that could drift it
    for name in untaken:
        for old, new in zip(before[name][0] + before[name][1], after[name][0] + after[name][1]):
            np.testing.assert_array_equal(new, old, err_msg=name)


def test_taken_branches_move(trained):
    net, _, before, after, _, _ = trained
    moved = {name for name in before
             if any(not np.array_equal(a, b) for a, b in zip(before[name][0], after[name][0]))}
    assert _used_names(BLOCK0_NORMAL) | {"stem", "head"} <= moved
    assert moved <= _used_names(BLOCK0_NORMAL) | {"stem", "head"}


def test_one_trace_serves_every_path_of_the_train_step(trained):
    assert len({tuple(map(tuple, dict(vars(_path(*p))).values()))
                for p in WARM_UP + BLOCK0_NORMAL}) == 5
    assert trained[1].experimental_get_tracing_count() == 1


def test_weight_decay_covers_exactly_the_paths_kernels(model_config):
    l2 = 1e-2
    net = _l2_supernet(model_config, l2)
    path = _path((1, 2, 0.5), (4, 4, 8, 8, 8))
    expected = _direct_decay(net, path, l2)
    decay = tf.function(lambda *p: path_weight_decay(net, p), autograph=False)
    np.testing.assert_allclose(float(decay(*path.as_tuple())), expected, rtol=1e-5)
    assert float(tf.add_n(net.losses)) > 1.5 * expected  # every branch decays more


def test_the_train_steps_weight_decay_is_the_paths(trained):
    for got, expected in trained[5]:
        np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("kind", ["adam", "sgd_momentum"])
def test_slots_of_finds_the_optimizers_own_slots(kind):
    from mnas_tf.proxy import create_optimizer_slots
    if kind == "adam":
        optimizer, lists = tf_keras.optimizers.Adam(), ("_momentums", "_velocities")
    else:
        optimizer, lists = tf_keras.optimizers.SGD(0.1, momentum=0.9), ("momentums",)
    variables = [tf.Variable(tf.ones([2, 3])), tf.Variable(tf.zeros([4])),
                 tf.Variable(tf.zeros([4]))]
    create_optimizer_slots(optimizer, variables)
    for i, v in enumerate(variables):
        expected = [getattr(optimizer, name)[i] for name in lists]
        assert [id(s) for s in slots_of(optimizer, v)] == [id(s) for s in expected]
    check_slots_found(optimizer, variables)
    with pytest.raises(ValueError, match="not matched"):
        check_slots_found(optimizer, variables[:1])
