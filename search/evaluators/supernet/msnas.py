"""The MSNAS weight-sharing super-net: every path of the stride space in ONE compiled step.

A path is passed as int tensors (`PathTensors`): each block's choice (0 up, 1 normal,
2 down), each block's lateral source (-1: none), the block each head reads and the
index of each head's stride. Blocks, laterals and head inputs are picked with
`tf.switch_case`, so shapes are dynamic and one trace serves every path; only the taken
branch runs. A step trains the path alone, as its stand-alone child would be trained:
the L2 weight decay (the layers' own regularizers) is summed over the path's layers only
(stem, head, each block's chosen branch, the laterals it uses), and after the optimizer
update every untaken branch's weights and optimizer slots are put back, since Adam (or
any momentum optimizer) would otherwise move them by their momentum on a zero gradient
(the SPOS caveat, reference §2.1).

Anchors depend on the path, so labels cannot come from the input pipeline: the parser
passes the augmented ground truth through (`DeferredLabeler`) and the step labels the
path's anchors with Model Garden's matcher, then uses the task's own focal/Huber losses.
Scoring a path (`SuperNetTrainer.score`) fine-tunes it briefly (which also re-estimates
its BN statistics), runs Model Garden's detection generator and COCO evaluator, and puts
the shared weights back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import time
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras
from official.vision.dataloaders import retinanet_input
from official.vision.modeling.heads import dense_prediction_heads
from official.vision.ops import anchor as mg_anchor
from official.vision.utils.object_detection import box_list

from mnas_tf.arch.msnas import FEATURE_STRIDES, NUM_GROUPS, STRIDE_CHOICES, MSNASSpec
from mnas_tf.modeling import msnas as layers


@dataclasses.dataclass(frozen=True)
class PathTensors:
    """A path as the int arrays the compiled step takes."""

    choices: np.ndarray
    lateral_sources: np.ndarray
    head_blocks: np.ndarray
    head_strides: np.ndarray

    @classmethod
    def of(cls, spec: MSNASSpec) -> "PathTensors":
        enc = spec.encoder
        return cls(
            choices=np.array([STRIDE_CHOICES.index(s) for s in enc.strides], np.int32),
            lateral_sources=np.array([-1 if r is None else r for r in enc.lateral_sources()],
                                     np.int32),
            head_blocks=np.array(spec.head_blocks(), np.int32),
            head_strides=np.array([FEATURE_STRIDES.index(s) for s in spec.feature_strides],
                                  np.int32))

    def as_tuple(self):
        return (tf.constant(self.choices), tf.constant(self.lateral_sources),
                tf.constant(self.head_blocks), tf.constant(self.head_strides))


class PathCells:
    """The cells every MSNAS super-net shares, and the path's forward through them.

    The stem, 3 choices x N blocks and N-1 lateral convs (the last block never feeds a
    lateral: nothing comes after it). `encode` runs a path given as int tensors: one
    `tf.switch_case` per block choice, lateral source and head input, so one trace
    serves every path. Mixed into a Keras Model (the one-stage `SuperNet`) or Layer (the
    two-stage super-net's backbone), whose attribute tracking owns the cells.
    """

    def _build_cells(self, num_blocks: int, channels: int, model_config,
                     l2_regularizer=None) -> None:
        norm = model_config.norm_activation
        args = dict(norm_momentum=norm.norm_momentum, norm_epsilon=norm.norm_epsilon,
                    kernel_regularizer=l2_regularizer)
        self.num_blocks, self.channels = num_blocks, channels
        self.stem = layers.Stem(channels, name="stem", **args)
        self.choice_blocks = [[layers.StrideBlock(channels, s, name=layers.block_name(i, s),
                                                  **args) for s in STRIDE_CHOICES]
                              for i in range(num_blocks)]
        self.laterals = [layers.LateralConv(channels, name=f"lateral_{k}", **args)
                         for k in range(num_blocks - 1)]

    def build_cells(self, image_size: Sequence[int]) -> tf.Tensor:
        """Creates every branch's weights eagerly (variables cannot be born in a branch);
        returns a stride-4 feature for building what reads the cells."""
        x = self.stem(tf.zeros([1, *image_size, 3]), training=False)
        for i, blocks in enumerate(self.choice_blocks):
            for b in blocks:
                b(x, training=False)
            if i < len(self.laterals):
                self.laterals[i](x, training=False)
        return x

    def cell_layers(self) -> dict:
        """{name: layer}: the names a stand-alone MSNASEncoder gives the same layers."""
        mine = {l.name: l for blocks in self.choice_blocks for l in blocks}
        mine.update({l.name: l for l in (self.stem, *self.laterals)})
        return mine

    def export_encoder(self, spec: MSNASSpec, input_specs=None) -> layers.MSNASEncoder:
        """The stand-alone encoder of a path, with the super-net's weights for it."""
        encoder = layers.MSNASEncoder(spec, input_specs=input_specs,
                                      norm_momentum=self.stem.get_config()["norm_momentum"],
                                      norm_epsilon=self.stem.get_config()["norm_epsilon"])
        copy_cells_into(self, encoder)
        return encoder

    def encode(self, images, path, training=None) -> dict:
        """The path's group features {'2'..'6': tensor}."""
        choices, lateral_sources, head_blocks = path[0], path[1], path[2]
        x = self.stem(images, training=training)
        outputs = []
        for i, blocks in enumerate(self.choice_blocks):
            x = tf.switch_case(choices[i], [
                (lambda b=b, x=x: b(x, training=training)) for b in blocks])
            if i > 0:
                zero = lambda x=x: tf.zeros_like(x)  # noqa: E731
                x = x + tf.switch_case(lateral_sources[i] + 1, [zero] + [
                    (lambda k=k: self.laterals[k](outputs[k], training=training))
                    for k in range(i)])
            outputs.append(x)
        return {key: tf.switch_case(head_blocks[g], [(lambda j=j: outputs[j])
                                                     for j in range(self.num_blocks)])
                for g, key in enumerate(layers.GROUP_KEYS)}


def copy_cells_into(cells: PathCells, encoder: tf_keras.Model) -> None:
    """Copies the super-net's cell weights into a stand-alone encoder's same-named layers."""
    mine = cells.cell_layers()
    for layer in encoder.layers:
        if layer.name in mine:
            layer.set_weights(mine[layer.name].get_weights())


class SuperNet(PathCells, tf_keras.Model):
    """The one-stage super-net: the shared cells and a RetinaNetHead for the 5 groups.

    `l2_regularizer` sits on every layer as in the child; `model.losses` thus decays every
    branch, so the train step sums it over the path only (`path_weight_decay`).
    """

    def __init__(self, num_blocks: int, channels: int, model_config,
                 l2_regularizer: Optional[tf_keras.regularizers.Regularizer] = None, **kwargs):
        super().__init__(**kwargs)
        self._build_cells(num_blocks, channels, model_config, l2_regularizer)
        norm = model_config.norm_activation
        head = model_config.head
        self.head = dense_prediction_heads.RetinaNetHead(
            min_level=model_config.min_level, max_level=model_config.max_level,
            num_classes=model_config.num_classes,
            num_anchors_per_location=(len(model_config.anchor.aspect_ratios)
                                      * model_config.anchor.num_scales),
            num_convs=head.num_convs, num_filters=head.num_filters,
            use_separable_conv=head.use_separable_conv, activation=norm.activation,
            norm_momentum=head.norm_momentum or norm.norm_momentum,
            norm_epsilon=head.norm_epsilon or norm.norm_epsilon,
            kernel_regularizer=l2_regularizer, name="head")

    def always_used(self) -> list:
        """The layers every path runs (besides its branches and laterals)."""
        return [self.stem, self.head]

    def build_all(self, image_size: Sequence[int]) -> None:
        """Creates every branch's weights eagerly (variables cannot be born in a branch)."""
        x = self.build_cells(image_size)
        self.head({k: x for k in layers.GROUP_KEYS}, training=False)

    def export_child(self, spec: MSNASSpec, input_specs=None) -> layers.MSNASEncoder:
        """The stand-alone encoder of a path, with the super-net's weights for it."""
        return self.export_encoder(spec, input_specs)

    def call(self, images, path, training=None):
        return self.head(self.encode(images, path, training), training=training)


# ------------------------------------------------------------------------ labels
class DeferredLabeler:
    """Stands in for AnchorLabeler in Model Garden's parser: passes the augmented ground
    truth through (padded to `max_instances`) for the step to label per path."""

    def __init__(self, max_instances: int):
        self._max = max_instances

    def label_anchors(self, anchor_boxes, gt_boxes, gt_labels, gt_attributes=None):
        del anchor_boxes, gt_attributes
        n = tf.minimum(tf.shape(gt_boxes)[0], self._max)
        pad = self._max - n
        boxes = tf.pad(gt_boxes[:n], [[0, pad], [0, 0]])
        classes = tf.pad(tf.cast(gt_labels[:n, 0], tf.int32), [[0, pad]], constant_values=-1)
        valid = tf.cast(tf.range(self._max) < n, tf.float32)
        return {"gt_classes": classes}, {"gt_boxes": boxes}, {}, valid, valid


class DeferredLabelParser(retinanet_input.Parser):
    """Model Garden's parser (augmentation included) with anchor labelling deferred."""

    def _parse_train_data(self, data, anchor_labeler=None, input_anchor=None):
        return super()._parse_train_data(
            data, DeferredLabeler(self._max_num_instances),
            lambda image_size: {"none": tf.zeros([0, 4])})


def gather_matched(values, match_indices, masked, fill, n):
    """values[match_indices] per anchor, `fill` where `masked` (and everywhere when there
    is no ground truth: n == 0). Model Garden's TargetGather needs a static anchor count
    for images without ground truth, hence this."""
    picked = tf.cond(n > 0, lambda: tf.gather(values, tf.maximum(match_indices, 0)),
                     lambda: tf.fill(tf.concat([tf.shape(match_indices),
                                                tf.shape(values)[1:]], 0),
                                     tf.cast(fill, values.dtype)))
    shape = tf.concat([[-1], tf.ones([tf.rank(values) - 1], tf.int32)], 0)
    return tf.where(tf.reshape(masked, shape), tf.cast(fill, values.dtype), picked)


def label_flat_anchors(labeler: mg_anchor.AnchorLabeler, anchors, gt_boxes, gt_classes,
                       valid):
    """AnchorLabeler.label_anchors on one image's flat [N, 4] anchors (no unpacking).

    Model Garden's matching and encoding; the gather is redone (`gather_matched`), and
    the final per-level unpack (static feature sizes) is left out.
    """
    n = tf.cast(tf.reduce_sum(valid), tf.int32)
    gt_boxes, gt_labels = gt_boxes[:n], gt_classes[:n]
    similarity = labeler.similarity_calc(anchors, gt_boxes)
    match_indices, match_indicators = labeler.matcher(similarity)
    negative = tf.less_equal(match_indicators, 0)
    cls_targets = gather_matched(gt_labels, match_indices, negative, -1, n)
    box_targets = gather_matched(gt_boxes, match_indices, negative, 0.0, n)
    box_weights = gather_matched(tf.ones([n], tf.float32), match_indices, negative, 0.0, n)
    cls_weights = tf.where(tf.equal(match_indicators, -2), 0.0, 1.0)
    box_targets = labeler.box_coder.encode(box_list.BoxList(box_targets),
                                           box_list.BoxList(anchors))
    return cls_targets, box_targets, cls_weights, box_weights


class PathAnchors:
    """Every group's anchors at every feature stride, picked per path inside the graph."""

    def __init__(self, model_config, image_size: Sequence[int]):
        self._table = [[tf.reshape(layers.group_anchor_boxes(
            s, int(key), model_config.anchor.num_scales, model_config.anchor.aspect_ratios,
            model_config.anchor.anchor_size, image_size), [-1, 4]) for s in FEATURE_STRIDES]
            for key in layers.GROUP_KEYS]
        self._sizes = [[math.ceil(image_size[0] / s), math.ceil(image_size[1] / s)]
                       for s in FEATURE_STRIDES]

    def flat(self, head_strides) -> list:
        """[N_g, 4] per group."""
        return [tf.switch_case(head_strides[g], [(lambda t=t: t) for t in self._table[g]])
                for g in range(NUM_GROUPS)]

    def per_group(self, head_strides) -> dict:
        """Static-shaped {key: [H, W, A*4]} for a path given as Python ints (inference)."""
        return {key: tf.reshape(self._table[g][s], [*self._sizes[s], -1])
                for g, (key, s) in enumerate(zip(layers.GROUP_KEYS, head_strides))}


def flatten_outputs(outputs: dict, last_dim: int):
    return tf.concat([tf.reshape(outputs[k], [tf.shape(outputs[k])[0], -1, last_dim])
                      for k in layers.GROUP_KEYS], axis=1)


# ------------------------------------------------------------------------ path-only update
def branch_usage(model: SuperNet, path) -> list:
    """(layer, scalar bool: the path uses it) for every choice branch and lateral conv.

    A lateral k is used when some later block i takes it (lateral_sources[i] == k); the
    stem and the head are always used and are not listed.
    """
    choices, lateral_sources = path[0], path[1]
    usage = [(b, tf.equal(choices[i], c)) for i, blocks in enumerate(model.choice_blocks)
             for c, b in enumerate(blocks)]
    for k, lateral in enumerate(model.laterals):
        users = [tf.equal(lateral_sources[i], k) for i in range(k + 1, model.num_blocks)]
        usage.append((lateral, tf.reduce_any(tf.stack(users))))
    return usage


def _total(losses) -> tf.Tensor:
    return tf.add_n(losses) if losses else tf.constant(0.0)


def path_weight_decay(model: SuperNet, path) -> tf.Tensor:
    """The layers' own L2 regularization over the path's layers only (model.losses would
    decay every branch, moving untaken ones)."""
    decay = _total([loss for layer in model.always_used() for loss in layer.losses])
    for layer, taken in branch_usage(model, path):
        decay += tf.where(taken, _total(layer.losses), 0.0)
    return decay


def slots_of(optimizer, var) -> list:
    """The optimizer's per-variable state of `var` (Adam m/v, SGD momentum, EMA, ...),
    looked up through the optimizer's own variable index, not by name."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    if hasattr(inner, "get_slot_names"):  # tf_keras legacy OptimizerV2
        return [inner.get_slot(var, name) for name in inner.get_slot_names()]
    index = getattr(inner, "_index_dict", {})
    key = inner._var_key(var)  # pylint: disable=protected-access
    if key not in index:
        raise ValueError(f"{var.name} has no optimizer state: build the optimizer on it "
                         "first (mnas_tf.proxy.create_optimizer_slots)")
    # the new optimizer keeps each kind of slot as a list aligned with its index
    lists = [value for name, value in sorted(vars(inner).items())
             if name != "_variables" and isinstance(value, (list, tuple))
             and len(value) == len(index) and value
             and all(isinstance(v, tf.Variable) for v in value)]
    return [slots[index[key]] for slots in lists]


def check_slots_found(optimizer, variables) -> None:
    """Raises when the optimizer holds a non-scalar variable that `slots_of` places on no
    model variable: the untaken branches could not be held still."""
    found = {id(s) for v in variables for s in slots_of(optimizer, v)}
    lost = [w.name for w in optimizer.variables()
            if id(w) not in found and w.shape.rank]
    if lost:
        raise ValueError(f"optimizer state not matched to any model variable: {lost[:5]}")


def update_path_only(model: SuperNet, optimizer, path, apply) -> None:
    """Runs `apply` (the optimizer update) and puts back bit for bit the weights and
    optimizer slots of every branch the path does not take."""
    held = [(s, taken, tf.identity(s.read_value()))
            for layer, taken in branch_usage(model, path)
            for v in layer.trainable_variables for s in (v, *slots_of(optimizer, v))]
    apply()  # automatic control dependencies order the reads, the update, the writes
    for s, taken, old in held:
        s.assign(tf.where(taken, s.read_value(), old))


def make_path_step(task, model: SuperNet, optimizer, anchors: PathAnchors):
    """The compiled train step: (images, deferred labels, path) -> loss; traced once.

    It trains the path alone: weight decay over the path's layers, untaken branches and
    their optimizer slots left as they were.
    """
    from mnas_tf.proxy import create_optimizer_slots
    create_optimizer_slots(optimizer, model.trainable_variables)  # slots_of needs them
    check_slots_found(optimizer, model.trainable_variables)
    cfg = task.task_config
    p = cfg.train_data.parser
    labeler = mg_anchor.AnchorLabeler(p.match_threshold, p.unmatched_threshold,
                                      cfg.model.detection_generator.box_coder_weights)
    num_classes = cfg.model.num_classes

    def step(images, labels, path):
        flat = tf.concat(anchors.flat(path[3]), axis=0)
        cls_t, box_t, cls_w, box_w = tf.map_fn(
            lambda a: label_flat_anchors(labeler, flat, *a),
            (labels["box_targets"]["gt_boxes"], labels["cls_targets"]["gt_classes"],
             labels["cls_weights"]),
            fn_output_signature=(tf.int32, tf.float32, tf.float32, tf.float32))
        with tf.GradientTape() as tape:
            cls_out, box_out, _ = model(images, path, training=True)
            outputs = {"cls_outputs": {"all": flatten_outputs(cls_out, num_classes)},
                       "box_outputs": {"all": flatten_outputs(box_out, 4)}}
            loss, _, _, _ = task.build_losses(
                outputs, {"cls_targets": {"all": cls_t}, "box_targets": {"all": box_t},
                          "cls_weights": cls_w, "box_weights": box_w},
                [path_weight_decay(model, path)])
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        update_path_only(model, optimizer, path,
                         lambda: optimizer.apply_gradients(zip(grads, variables)))
        return loss

    return tf.function(step, autograph=False, reduce_retracing=True)


# ------------------------------------------------------------------------ trainer
# step counts in Model Garden's learning-rate and warm-up configs (`scaled_schedule`)
SCHEDULE_STEP_KEYS = ("boundaries", "decay_steps", "warmup_steps", "offset",
                      "total_decay_steps")


def scaled_schedule(optimizer_config, factor: float):
    """The Model Garden optimizer config with its schedule's step counts times `factor`:
    the experiment's schedule spans trainer.train_steps, the super-net's its own steps."""
    def scale(key, value):
        if isinstance(value, (list, tuple)):
            return [round(v * factor) for v in value]
        # a warm-up or decay of 0 steps divides by zero
        return value if key == "offset" and not value else max(1, round(value * factor))

    overrides = {}
    for section in ("learning_rate", "warmup"):
        kind = getattr(optimizer_config, section).type
        if kind:
            params = getattr(getattr(optimizer_config, section), kind).as_dict()
            overrides[section] = {kind: {k: scale(k, v) for k, v in params.items()
                                         if k in SCHEDULE_STEP_KEYS and v is not None}}
    return optimizer_config.replace(**overrides)


def experiment_optimizer(engine, steps: int):
    """The experiment's optimizer (trainer.optimizer_config, built by Model Garden's
    `Task.create_optimizer` as the proxy builds its children's), its schedule stretched
    from trainer.train_steps to the super-net's `steps`."""
    params = engine.params
    config = scaled_schedule(params.trainer.optimizer_config,
                             steps / params.trainer.train_steps)
    return engine.task.create_optimizer(config, params.runtime)


def learning_rate_now(optimizer) -> float:
    """The learning rate the optimizer's next update uses (its schedule at `iterations`)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if hasattr(inner, "_decayed_lr"):  # tf_keras legacy OptimizerV2 (Model Garden's SGD)
        return float(inner._decayed_lr(tf.float32))  # pylint: disable=protected-access
    lr = inner._learning_rate  # pylint: disable=protected-access
    if isinstance(lr, tf_keras.optimizers.schedules.LearningRateSchedule):
        return float(lr(inner.iterations))
    return float(lr)


class SuperNetTrainer:
    """Owns a super-net, its optimizer, its compiled steps and its scoring.

    `optimizer`: "adam" (constant `learning_rate`, global clip norm 10; fine-tuning runs on
    the same Adam at `finetune_learning_rate`) or "experiment" (the experiment's optimizer
    and schedule over `steps`; fine-tuning runs on its own SGD, momentum 0.9, constant
    `finetune_learning_rate`, zeroed before each candidate, as MSNAS §4.1).
    """

    def __init__(self, engine, num_blocks: int, channels: int, learning_rate: float,
                 finetune_learning_rate: float, seed: int = 0, optimizer: str = "adam",
                 steps: Optional[int] = None, detector: str = "retinanet", parts=None):
        tf_keras.utils.set_random_seed(seed)
        self.engine = engine
        self.task = engine.task
        self.detector = detector
        cfg = self.task.task_config
        self.image_size = tuple(cfg.model.input_size[:2])
        self.learning_rate = learning_rate
        self.finetune_learning_rate = finetune_learning_rate
        l2 = cfg.losses.l2_weight_decay
        regularizer = tf_keras.regularizers.l2(l2 / 2.0) if l2 else None
        if detector == "fasterrcnn":
            # the two-stage parts come from its module (which builds on this one)
            if parts is None:
                raise ValueError("detector fasterrcnn: pass parts=fasterrcnn.trainer_parts")
            self.model, make_step = parts(self.task, num_blocks, channels, self.image_size,
                                          regularizer)
        elif detector == "retinanet":
            self.model = SuperNet(num_blocks, channels, cfg.model, regularizer)
            make_step = lambda opt: make_path_step(  # noqa: E731
                self.task, self.model, opt, self.anchors)
        else:
            raise ValueError(f"unknown super-net detector {detector!r}")
        self.model.build_all(self.image_size)
        self.anchors = PathAnchors(cfg.model, self.image_size)
        if optimizer == "adam":
            self.optimizer = tf_keras.optimizers.Adam(learning_rate, global_clipnorm=10.0)
            self.finetune_optimizer = None
        elif optimizer == "experiment":
            self.optimizer = experiment_optimizer(engine, steps)
            self.finetune_optimizer = tf_keras.optimizers.SGD(finetune_learning_rate,
                                                              momentum=0.9)
        else:
            raise ValueError(f"unknown super-net optimizer {optimizer!r}")
        self.train_step = make_step(self.optimizer)
        self.finetune_step = self.train_step if self.finetune_optimizer is None else (
            make_step(self.finetune_optimizer))
        if detector == "fasterrcnn":  # the model's own RoI and detection generators
            self._predict = tf.function(
                lambda images, image_shape, path: self.model(
                    images, path, image_shape=image_shape, training=False),
                autograph=False, reduce_retracing=True)
        else:
            self._predict = tf.function(lambda images, path: self.model(images, path,
                                                                        training=False),
                                        autograph=False, reduce_retracing=True)
            self._generator = self._detection_generator()
        self.finetune_batches: Sequence = []
        self.initial_state = self.snapshot()  # stand-alone training starts here

    def _detection_generator(self):
        from official.vision.modeling.layers import detection_generator
        gen = self.task.task_config.model.detection_generator
        return detection_generator.MultilevelDetectionGenerator(
            apply_nms=gen.apply_nms, pre_nms_top_k=gen.pre_nms_top_k,
            pre_nms_score_threshold=gen.pre_nms_score_threshold,
            nms_iou_threshold=gen.nms_iou_threshold, max_num_detections=gen.max_num_detections,
            nms_version=gen.nms_version, use_cpu_nms=gen.use_cpu_nms,
            box_coder_weights=gen.box_coder_weights)

    def step(self, spec: MSNASSpec, batch, step_fn=None) -> float:
        """One training step of the path (the same compiled function for every path)."""
        images, labels = batch
        step_fn = step_fn or self.train_step
        return float(step_fn(images, labels, PathTensors.of(spec).as_tuple()))

    def trace_counts(self) -> dict:
        return {"train": self.train_step.experimental_get_tracing_count(),
                "finetune": self.finetune_step.experimental_get_tracing_count()}

    def trace_count(self) -> int:
        """The most traces of any step function (1: each serves every path)."""
        return max(self.trace_counts().values())

    # -------------------------------------------------------------- scoring
    def _state(self) -> list:
        return list(self.model.variables) + list(self.optimizer.variables())

    def snapshot(self) -> list:
        """The shared weights and optimizer state, to put back after a fine-tune."""
        return [v.numpy() for v in self._state()]

    def restore(self, values: list) -> None:
        for v, value in zip(self._state(), values):
            v.assign(value)

    def evaluate(self, spec: MSNASSpec) -> dict:
        """COCO metrics of the path on the engine's validation batches."""
        task = self.task
        path = PathTensors.of(spec)
        if self.detector == "fasterrcnn":
            return self._evaluate_rcnn(path)
        anchors = self.anchors.per_group([int(s) for s in path.head_strides])
        state = None
        for images, labels in self.engine._val_batches:  # pylint: disable=protected-access
            scores, boxes, _ = self._predict(images, path.as_tuple())
            batch = tf.shape(images)[0]
            raw_boxes = {k: tf.reshape(boxes[k], [batch, *anchors[k].shape[:2], -1])
                         for k in anchors}
            raw_scores = {k: tf.reshape(scores[k], [batch, *anchors[k].shape[:2], -1])
                          for k in anchors}
            batch_anchors = {k: tf.tile(v[None], [batch, 1, 1, 1]) for k, v in anchors.items()}
            out = self._generator(raw_boxes, raw_scores, batch_anchors,
                                  labels["image_info"][:, 1, :])
            coco = {"detection_boxes": out["detection_boxes"],
                    "detection_scores": out["detection_scores"],
                    "detection_classes": out["detection_classes"],
                    "num_detections": out["num_detections"],
                    "source_id": labels["groundtruths"]["source_id"],
                    "image_info": labels["image_info"]}
            state = task.aggregate_logs(state, {task.coco_metric.name:
                                                (labels["groundtruths"], coco)})
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' report
            logs = task.reduce_aggregated_logs(state)
        return {k: float(v) for k, v in logs.items()
                if k in ("AP", "AP50", "AP75", "APs", "APm", "APl")}

    def _evaluate_rcnn(self, path: PathTensors) -> dict:
        """COCO metrics of a two-stage path: Model Garden's MaskRCNNTask validation
        (its `_update_metrics` and COCO evaluator) on the super-net's detections."""
        task, state = self.task, None
        for images, labels in self.engine._val_batches:  # pylint: disable=protected-access
            outputs = self._predict(images, labels["image_info"][:, 1, :], path.as_tuple())
            logs: dict = {}
            task._update_metrics(labels, outputs, logs)  # pylint: disable=protected-access
            state = task.aggregate_logs(state, logs)
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' report
            logs = task.reduce_aggregated_logs(state)
        return {k: float(v) for k, v in logs.items()
                if k in ("AP", "AP50", "AP75", "APs", "APm", "APl")}

    def score(self, spec: MSNASSpec, finetune_steps: int) -> tuple[dict, dict]:
        """(metrics, timings) of a path after `finetune_steps` steps at the fine-tune LR.

        The fine-tune runs the compiled fine-tune step on the fixed `finetune_batches`
        (every candidate sees the same data), in training mode, so BN statistics move to
        the path's own; its own optimizer (if any) starts from zero slots, and the shared
        weights and optimizer state are restored afterwards: a score depends on the
        candidate alone, not on those scored before it.
        """
        timings = {}
        t0 = time.perf_counter()
        saved = self.snapshot() if finetune_steps else None
        try:
            if finetune_steps:
                self._start_finetune()
                for i in range(finetune_steps):
                    self.step(spec, self.finetune_batches[i % len(self.finetune_batches)],
                              self.finetune_step)
            timings["finetune_s"] = time.perf_counter() - t0
            timings["finetune_steps"] = finetune_steps
            t1 = time.perf_counter()
            metrics = self.evaluate(spec)
            timings["eval_s"] = time.perf_counter() - t1
        finally:
            if saved is not None:
                self.restore(saved)
                if self.finetune_optimizer is None:
                    self.optimizer.learning_rate.assign(self.learning_rate)
        return metrics, timings

    def _start_finetune(self) -> None:
        if self.finetune_optimizer is None:  # "adam": the shared Adam, at the fine-tune LR
            self.optimizer.learning_rate.assign(self.finetune_learning_rate)
            return
        for v in self.finetune_optimizer.variables():  # iterations and momentum slots
            v.assign(tf.zeros_like(v))

    def checkpoint(self, step: tf.Variable) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=step)


def deferred_train_inputs(task, data_params):
    """Training inputs with labelling left to the step (for `ProxyEngine`)."""
    parser = DeferredLabelParser(**layers.parser_kwargs(task.task_config, data_params))
    return layers.build_detection_inputs(task.task_config, data_params, parser)
