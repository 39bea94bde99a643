"""The two-stage MSNAS super-net: Model Garden's Faster R-CNN over every path, one trace.

The paper's detector (§4.1) as a super-net. It IS Model Garden's `MaskRCNNModel` (no
mask): its `call` runs the RPN head, the proposal layer, the stock `ROISampler` (and the
box targets it encodes), the RoI aligner, the stock `DetectionHead` (2 convs + 1 fc) and
the stock `DetectionGenerator`; the task's own `build_losses` gives the RPN and Fast
R-CNN losses. The parts are those `build_fasterrcnn` builds for a child (taken from a
template child), so a path's child has the same layers with the same config. What the
path changes is swapped in:

- the backbone is the shared cells (`PathCells`, the one-stage super-net's builder),
  run for the path given as int tensors (`tf.switch_case`), so feature sizes are dynamic;
- `PathROIGenerator`: Model Garden's `MultilevelROIGenerator` step for step, with the
  per-level candidate counts taken from the maps at run time (the stock one reads
  static map sizes), padded to the static number of proposals;
- `PathROIAligner`: `GroupROIAligner`'s crop (Model Garden's bilinear crop, one level at
  the group's stride) with the stride picked per group from the path;
- anchors: the path's group anchors (`PathAnchors`), and the RPN targets labelled in the
  step on them (`label_rpn_anchors`: Model Garden's RpnAnchorLabeler matching and
  fg/bg sampling), because the input pipeline cannot know the path.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import tensorflow as tf
import tf_keras
from official.vision.dataloaders import maskrcnn_input
from official.vision.modeling import maskrcnn_model
from official.vision.modeling.layers import roi_generator
from official.vision.ops import anchor as mg_anchor
from official.vision.ops import box_ops, nms
from official.vision.utils.object_detection import box_list

from mnas_tf.arch.msnas import FEATURE_STRIDES, NUM_GROUPS, MSNASSpec
from mnas_tf.modeling import fasterrcnn as rcnn
from mnas_tf.modeling import msnas as layers
from search.evaluators.supernet.msnas import (PathAnchors, PathCells, copy_cells_into,
                                              gather_matched, path_weight_decay,
                                              update_path_only)


class _CurrentPath:
    """The path of the call in progress (its int tensors), shared by the parts that
    MaskRCNNModel calls without a path argument (backbone, aligner)."""

    value = None


# ------------------------------------------------------------------------ proposals
def propose_rois(raw_boxes, raw_scores, anchor_boxes, image_shape, pre_nms_top_k=2000,
                 pre_nms_score_threshold=0.0, pre_nms_min_size_threshold=0.0,
                 nms_iou_threshold=0.7, num_proposals=1000, use_batched_nms=False):
    """Model Garden's `_multilevel_propose_rois` (decode, clip, filter, top-k, NMS per
    level, then an overall top-k), line for line, with each level's candidate count
    read at run time: min(num_boxes, k) is a tensor where the stock code takes the map's
    static size."""
    with tf.name_scope("multilevel_propose_rois"):
        rois, roi_scores = [], []
        image_shape = tf.expand_dims(image_shape, axis=1)
        for level in sorted(raw_scores.keys()):
            with tf.name_scope(f"level_{level}"):
                num_boxes = tf.reduce_prod(tf.shape(raw_scores[level])[1:])
                scores = tf.reshape(raw_scores[level], [-1, num_boxes])
                boxes = tf.reshape(raw_boxes[level], [-1, num_boxes, 4])
                anchors = tf.cast(tf.reshape(anchor_boxes[level], [-1, num_boxes, 4]),
                                  scores.dtype)
                scores = tf.sigmoid(scores)
                boxes = box_ops.clip_boxes(box_ops.decode_boxes(boxes, anchors),
                                           image_shape)
                if pre_nms_min_size_threshold > 0.0:
                    boxes, scores = box_ops.filter_boxes(boxes, scores, image_shape,
                                                         pre_nms_min_size_threshold)
                pre_k = tf.minimum(num_boxes, pre_nms_top_k)
                post_k = tf.minimum(num_boxes, num_proposals)
                if nms_iou_threshold > 0.0:
                    if use_batched_nms:
                        level_rois, level_scores, _, _ = (
                            tf.image.combined_non_max_suppression(
                                tf.expand_dims(boxes, axis=2),
                                tf.expand_dims(scores, axis=-1),
                                max_output_size_per_class=pre_k, max_total_size=post_k,
                                iou_threshold=nms_iou_threshold,
                                score_threshold=pre_nms_score_threshold,
                                pad_per_class=False, clip_boxes=False))
                    else:
                        if pre_nms_score_threshold > 0.0:
                            boxes, scores = box_ops.filter_boxes_by_scores(
                                boxes, scores, pre_nms_score_threshold)
                        boxes, scores = box_ops.top_k_boxes(boxes, scores, k=pre_k)
                        level_scores, level_rois = nms.sorted_non_max_suppression_padded(
                            scores, boxes, max_output_size=post_k,
                            iou_threshold=nms_iou_threshold)
                else:
                    level_rois, level_scores = box_ops.top_k_boxes(boxes, scores, k=post_k)
                rois.append(level_rois)
                roi_scores.append(level_scores)
        all_rois = tf.concat(rois, axis=1)
        all_scores = tf.concat(roi_scores, axis=1)
        with tf.name_scope("top_k_rois"):
            k = tf.minimum(tf.shape(all_scores)[1], num_proposals)
            return box_ops.top_k_boxes(all_rois, all_scores, k=k)


class PathROIGenerator(roi_generator.MultilevelROIGenerator):
    """Model Garden's RoI generator (same config) on maps whose sizes are known only at
    run time. Its output has the static shape [batch, num_proposals, 4]: a path with
    fewer candidates in all (below num_proposals, e.g. every group at stride 64 on a
    small image) gets zero boxes of score 0 after its own, as the padded NMS pads; with
    at least num_proposals candidates the output is the stock generator's exactly."""

    def call(self, raw_boxes, raw_scores, anchor_boxes, image_shape, training=None):
        c = self._config_dict
        prefix = "" if training else "test_"
        num_proposals = c[prefix + "num_proposals"]
        rois, scores = propose_rois(
            raw_boxes, raw_scores, anchor_boxes, image_shape,
            pre_nms_top_k=c[prefix + "pre_nms_top_k"],
            pre_nms_score_threshold=c[prefix + "pre_nms_score_threshold"],
            pre_nms_min_size_threshold=c[prefix + "pre_nms_min_size_threshold"],
            nms_iou_threshold=c[prefix + "nms_iou_threshold"],
            num_proposals=num_proposals, use_batched_nms=c["use_batched_nms"])
        pad = num_proposals - tf.shape(scores)[1]
        rois = tf.pad(rois, [[0, 0], [0, pad], [0, 0]])
        scores = tf.pad(scores, [[0, 0], [0, pad]])
        batch = image_shape.shape[0]
        return (tf.ensure_shape(rois, [batch, num_proposals, 4]),
                tf.ensure_shape(scores, [batch, num_proposals]))


# ------------------------------------------------------------------------ RoI features
class PathROIAligner(tf_keras.layers.Layer):
    """`GroupROIAligner` with the path's strides: group g's feature is cropped at the
    stride the path gives it (one `tf.switch_case` branch per stride, in which the map
    has its static size), and each RoI keeps the crop of its group (`roi_groups`)."""

    def __init__(self, image_size: Sequence[int], current: _CurrentPath, k_first: int = 2,
                 crop_size: int = 7, sample_offset: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        if any(int(d) % FEATURE_STRIDES[-1] for d in image_size):
            raise ValueError(f"the two-stage super-net needs an input size divisible by "
                             f"{FEATURE_STRIDES[-1]}, got {list(image_size)}")
        self._image_size = tuple(int(d) for d in image_size)
        self._current = current
        self._k_first, self._crop_size, self._sample_offset = k_first, crop_size, sample_offset

    def call(self, features, boxes, training=None):
        head_strides = self._current.value[3]
        h, w = self._image_size
        crops = []
        for g, key in enumerate(layers.GROUP_KEYS):
            def crop(s, f=features[key]):
                f = tf.ensure_shape(f, [None, h // s, w // s, f.shape[-1]])
                return rcnn.crop_at_stride(f, boxes, s, self._crop_size, self._sample_offset)
            crops.append(tf.switch_case(head_strides[g], [
                (lambda s=s: crop(s)) for s in FEATURE_STRIDES]))
        return rcnn.pick_crops(crops, rcnn.roi_groups(boxes, self._k_first))


class PathEncoder(PathCells, tf_keras.layers.Layer):
    """The shared cells as a Model Garden backbone: the current path's group features."""

    def __init__(self, num_blocks: int, channels: int, model_config, current: _CurrentPath,
                 l2_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self._build_cells(num_blocks, channels, model_config, l2_regularizer)
        self._current = current

    def call(self, images, training=None):
        return self.encode(images, self._current.value, training)


# ------------------------------------------------------------------------ the super-net
def with_architecture(model_config, spec: MSNASSpec):
    """The model config with `spec` as its MSNAS encoder."""
    return model_config.replace(backbone={"msnas": {"architecture": spec.to_json()}})


def build_child(model_config, spec: MSNASSpec, image_size: Sequence[int],
                l2_regularizer=None) -> tf_keras.Model:
    """A path's stand-alone Faster R-CNN (`build_fasterrcnn`, as the task builds it),
    with every variable created."""
    specs = tf_keras.layers.InputSpec(shape=[None, *image_size, 3])
    child = rcnn.build_fasterrcnn(specs, with_architecture(model_config, spec),
                                  l2_regularizer)
    child(tf.zeros([1, *image_size, 3]), image_shape=tf.constant([list(image_size)],
                                                                 tf.float32),
          training=False)
    return child


def template_spec(num_blocks: int, channels: int) -> MSNASSpec:
    """Some valid path of the space (the super-net takes its non-path parts from it)."""
    import numpy as np
    from search.spaces.msnas import MSNASSpace
    return MSNASSpace(num_blocks, channels).sample(np.random.default_rng(0))


class FasterRCNNSuperNet(maskrcnn_model.MaskRCNNModel):
    """Model Garden's Faster R-CNN whose backbone, proposal layer and aligner follow the
    path passed to `call` (int tensors, `PathTensors`); one trace serves every path.

    The RPN head, box head, RoI sampler and detection generator are those a child gets
    (from `build_fasterrcnn` on a template path: same classes, same config)."""

    def __init__(self, num_blocks: int, channels: int, model_config,
                 image_size: Sequence[int],
                 l2_regularizer: Optional[tf_keras.regularizers.Regularizer] = None,
                 template: Optional[MSNASSpec] = None, **kwargs):
        if model_config.include_mask:
            raise ValueError("the two-stage super-net is Faster R-CNN: include_mask false")
        image_size = tuple(int(d) for d in image_size)
        current = _CurrentPath()
        child = rcnn.build_fasterrcnn(
            tf_keras.layers.InputSpec(shape=[None, *image_size, 3]),
            with_architecture(model_config, template or template_spec(num_blocks, channels)),
            l2_regularizer)
        c, a = child.get_config(), model_config.roi_aligner
        super().__init__(
            backbone=PathEncoder(num_blocks, channels, model_config, current,
                                 l2_regularizer, name="encoder"),
            decoder=None, rpn_head=c["rpn_head"], detection_head=c["detection_head"],
            roi_generator=PathROIGenerator(**c["roi_generator"].get_config()),
            roi_sampler=c["roi_sampler"],
            roi_aligner=PathROIAligner(image_size, current, k_first=a.k_first,
                                       crop_size=a.crop_size, sample_offset=a.sample_offset),
            detection_generator=c["detection_generator"],
            class_agnostic_bbox_pred=c["class_agnostic_bbox_pred"],
            cascade_class_ensemble=c["cascade_class_ensemble"], min_level=c["min_level"],
            max_level=c["max_level"], num_scales=c["num_scales"],
            aspect_ratios=c["aspect_ratios"], anchor_size=c["anchor_size"], **kwargs)
        if len(self.detection_head) != 1:
            raise ValueError("the two-stage super-net has one box head (no cascade)")
        self._current = current
        self.image_size = image_size
        self.model_config = model_config
        self.anchors = PathAnchors(model_config, image_size)

    # the cells, as the path-only update and weight decay look for them
    @property
    def stem(self):
        return self.backbone.stem

    @property
    def choice_blocks(self):
        return self.backbone.choice_blocks

    @property
    def laterals(self):
        return self.backbone.laterals

    @property
    def num_blocks(self):
        return self.backbone.num_blocks

    def always_used(self) -> list:
        """The layers every path runs (besides its branches and laterals)."""
        return [self.stem, self.rpn_head, *self.detection_head]

    def build_all(self, image_size: Optional[Sequence[int]] = None) -> None:
        """Creates every branch's weights eagerly (variables cannot be born in a branch)."""
        x = self.backbone.build_cells(image_size or self.image_size)
        self.rpn_head({k: x for k in layers.GROUP_KEYS})
        crop = self.roi_aligner._crop_size  # pylint: disable=protected-access
        self.detection_head[0](tf.zeros([1, 1, crop, crop, x.shape[-1]]))

    def path_anchors(self, path, batch_size) -> dict:
        """{group: [batch, N_g, 4]}: the path's group anchors."""
        return {key: tf.tile(a[None], [batch_size, 1, 1])
                for key, a in zip(layers.GROUP_KEYS, self.anchors.flat(path[3]))}

    def call(self, images, path, image_shape, anchor_boxes=None, gt_boxes=None,
             gt_classes=None, training=None):
        self._current.value = path
        if anchor_boxes is None:
            anchor_boxes = self.path_anchors(path, tf.shape(images)[0])
        return super().call(images, image_shape, anchor_boxes=anchor_boxes,
                            gt_boxes=gt_boxes, gt_classes=gt_classes, training=training)

    def roi_features(self, images, path, rois, training=None):
        """The box head's input for given RoIs: the path's features, group-aligned."""
        self._current.value = path
        return self.roi_aligner(self.backbone(images, training=training), rois)

    def export_child(self, spec: MSNASSpec) -> tf_keras.Model:
        """The path's stand-alone MSNASFasterRCNN with the super-net's weights for it."""
        child = build_child(self.model_config, spec, self.image_size)
        copy_cells_into(self.backbone, child.backbone)
        child.rpn_head.set_weights(self.rpn_head.get_weights())
        child.detection_head[0].set_weights(self.detection_head[0].get_weights())
        return child


# ------------------------------------------------------------------------ RPN labels
class RpnPathLabeler:
    """Model Garden's `RpnAnchorLabeler` on one image's flat anchors of a path.

    Matching (IoU, thresholds, forced matches) and box encoding are the labeler's own;
    its fg/bg sampling (`_get_rpn_samples`) needs a static anchor count, so the match
    indicators are padded to the most anchors any path has, the padding ignored (-2),
    and the result cut back. Padding after the path's anchors leaves their order, so
    the sampler draws the same anchors the child's parser would with the same seed.
    """

    def __init__(self, parser_config, max_anchors: int):
        p = parser_config
        self.labeler = mg_anchor.RpnAnchorLabeler(
            p.rpn_match_threshold, p.rpn_unmatched_threshold, p.rpn_batch_size_per_im,
            p.rpn_fg_fraction)
        self.max_anchors = max_anchors

    def __call__(self, anchors, gt_boxes, gt_classes):
        """(score targets [N] int32: 1 fg, 0 bg, -1 ignored; box targets [N, 4])."""
        lab = self.labeler
        valid = gt_classes > 0  # as the group parser: the stock parser pads with -1
        gt_boxes = tf.boolean_mask(gt_boxes, valid)
        n = tf.shape(gt_boxes)[0]
        similarity = lab.similarity_calc(anchors, gt_boxes)
        match_indices, match_indicators = lab.matcher(similarity)
        box_targets = gather_matched(gt_boxes, match_indices,
                                     tf.less_equal(match_indicators, 0), 0.0, n)
        box_targets = lab.box_coder.encode(box_list.BoxList(box_targets),
                                           box_list.BoxList(anchors))
        box_targets = tf.where(tf.greater_equal(match_indicators, 0)[:, None], box_targets,
                               tf.zeros_like(box_targets))
        num = tf.shape(anchors)[0]
        padded = tf.pad(match_indicators, [[0, self.max_anchors - num]], constant_values=-2)
        padded = tf.ensure_shape(padded, [self.max_anchors])
        scores, _, _ = lab._get_rpn_samples(padded)  # pylint: disable=protected-access
        return scores[:num], box_targets


def max_path_anchors(anchors: PathAnchors) -> int:
    """The most anchors a path can have: every group on its finest stride."""
    return sum(max(int(t.shape[0]) for t in table) for table in anchors._table)  # pylint: disable=protected-access


def rpn_targets(labeler: RpnPathLabeler, model: FasterRCNNSuperNet, path, gt_boxes,
                gt_classes, like: dict):
    """Per-group RPN score and box targets of a batch, shaped as the RPN outputs `like`
    ({'rpn_scores': {key: [B, H, W, A]}, 'rpn_boxes': ...})."""
    flats = model.anchors.flat(path[3])
    flat = tf.concat(flats, axis=0)
    scores, boxes = tf.map_fn(lambda a: labeler(flat, a[0], a[1]), (gt_boxes, gt_classes),
                              fn_output_signature=(tf.int32, tf.float32))
    sizes = [tf.shape(f)[0] for f in flats]
    score_parts = tf.split(scores, sizes, axis=1, num=NUM_GROUPS)
    box_parts = tf.split(boxes, sizes, axis=1, num=NUM_GROUPS)
    keys = layers.GROUP_KEYS
    return ({k: tf.cast(tf.reshape(s, tf.shape(like["rpn_scores"][k])), tf.float32)
             for k, s in zip(keys, score_parts)},
            {k: tf.reshape(b, tf.shape(like["rpn_boxes"][k])) for k, b in zip(keys, box_parts)})


def pad_to_finest(maps: dict, image_size: Sequence[int]) -> dict:
    """Each group's [B, H, W, C] map, flattened, zero-padded and reshaped to the stride-4
    size: a static shape for Model Garden's RpnBoxLoss, which reshapes with the map's
    static size. Zero box targets are its "invalid" ones, so the padding adds nothing to
    a group's loss or to its normaliser (the count of valid targets)."""
    h, w = (int(d) // FEATURE_STRIDES[0] for d in image_size)
    out = {}
    for key, m in maps.items():
        batch, channels = m.shape[0], m.shape[-1]
        flat = tf.reshape(m, [tf.shape(m)[0], -1])
        flat = tf.pad(flat, [[0, 0], [0, h * w * channels - tf.shape(flat)[1]]])
        out[key] = tf.reshape(flat, [-1 if batch is None else batch, h, w, channels])
    return out


def make_rcnn_path_step(task, model: FasterRCNNSuperNet, optimizer):
    """The compiled two-stage train step: (images, labels, path) -> loss; traced once.

    `labels` are Model Garden's Mask R-CNN parser's (gt_boxes, gt_classes, image_info).
    RPN targets are labelled on the path's anchors in the step; the RoI sampler, box
    targets and the Fast R-CNN outputs come from MaskRCNNModel's own call; the losses
    from the task's `build_losses`. The path trains alone: weight decay over its layers,
    untaken branches and their optimizer slots put back (`update_path_only`).
    """
    from mnas_tf.proxy import create_optimizer_slots
    from search.evaluators.supernet.msnas import check_slots_found
    create_optimizer_slots(optimizer, model.trainable_variables)
    check_slots_found(optimizer, model.trainable_variables)
    labeler = RpnPathLabeler(task.task_config.train_data.parser,
                             max_path_anchors(model.anchors))

    def step(images, labels, path):
        with tf.GradientTape() as tape:
            outputs = model(images, path, image_shape=labels["image_info"][:, 1, :],
                            gt_boxes=labels["gt_boxes"], gt_classes=labels["gt_classes"],
                            training=True)
            outputs = tf.nest.map_structure(lambda x: tf.cast(x, tf.float32), outputs)
            scores, boxes = rpn_targets(labeler, model, path, labels["gt_boxes"],
                                        labels["gt_classes"], outputs)
            outputs = {**outputs,
                       "rpn_boxes": pad_to_finest(outputs["rpn_boxes"], model.image_size)}
            losses = task.build_losses(
                outputs, {"rpn_score_targets": scores,
                          "rpn_box_targets": pad_to_finest(boxes, model.image_size)},
                [path_weight_decay(model, path)])
            loss = losses["total_loss"]
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        update_path_only(model, optimizer, path,
                         lambda: optimizer.apply_gradients(zip(grads, variables)))
        return loss

    return tf.function(step, autograph=False, reduce_retracing=True)


# ------------------------------------------------------------------------ inputs
class DeferredRCNNParser(maskrcnn_input.Parser):
    """Model Garden's Mask R-CNN parser (augmentation included) without its RPN targets
    and anchors: the step labels the path's own anchors."""

    def _parse_train_data(self, data):
        image, labels = super()._parse_train_data(data)
        for key in ("anchor_boxes", "rpn_score_targets", "rpn_box_targets"):
            labels.pop(key, None)
        return image, labels

    def _parse_eval_data(self, data):
        image, labels = super()._parse_eval_data(data)
        labels.pop("anchor_boxes", None)
        return image, labels


def deferred_rcnn_inputs(task, data_params):
    """Two-stage inputs with RPN labelling left to the step (for `ProxyEngine`)."""
    parser = DeferredRCNNParser(**rcnn.parser_kwargs(task.task_config, data_params))
    return layers.build_detection_inputs(task.task_config, data_params, parser)


def trainer_parts(task, num_blocks: int, channels: int, image_size, regularizer):
    """(model, make_step) of the two-stage super-net, for `msnas.SuperNetTrainer`."""
    model = FasterRCNNSuperNet(num_blocks, channels, task.task_config.model, image_size,
                               regularizer)
    return model, lambda optimizer: make_rcnn_path_step(task, model, optimizer)
