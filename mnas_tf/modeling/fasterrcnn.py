"""MSNAS as the paper's two-stage detector: Model Garden's Faster R-CNN on group features.

Model Garden's Mask R-CNN with `include_mask=False` is Faster R-CNN; its RPN head, anchor
labeler, RoI generator and sampler, detection head, detection generator, losses and COCO
evaluation run as they are. Only what the MSNAS layout changes is here:

- group anchors: RPN group g has Model Garden's level g+2 anchors (1 scale, ratios
  0.5/1/2, anchor_size 8: 32 * 2^g pixels) on the grid of stride s_g
  (`GroupAnchorGenerator`); `GroupAnchorRCNNParser` labels RPN targets on them;
- `GroupROIAligner`: RoI group g = clip(k0 + floor(log2(sqrt(wh) / 224)) - k_first, 0,
  G - 1), k0 = 4, cropped from group g's feature at stride s_g. Model Garden's
  `multilevel_crop_and_resize` assumes key l has stride 2^l, which MSNAS features break;
- `MSNASFasterRCNN`: defaults to group anchors when none are passed (inference).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import tensorflow as tf
import tf_keras
from official.vision.dataloaders import maskrcnn_input
from official.vision.modeling import factory as mg_factory
from official.vision.modeling import maskrcnn_model
from official.vision.ops import anchor as mg_anchor
from official.vision.ops import spatial_transform_ops

from mnas_tf.arch.msnas import NUM_GROUPS, load_msnas
from mnas_tf.configs.fasterrcnn import K_FIRST_CHOICES
from mnas_tf.modeling.msnas import GROUP_KEYS, GroupAnchorGenerator

K0 = 4  # FPN's canonical level: a 224x224 RoI goes to level k0 (eq. 1 of the FPN paper)


def roi_groups(boxes: tf.Tensor, k_first: int, num_groups: int = NUM_GROUPS) -> tf.Tensor:
    """Group index of each [y1, x1, y2, x2] box; Model Garden's level rule, shifted."""
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    areas_sqrt = tf.sqrt(tf.cast(height, tf.float32) * tf.cast(width, tf.float32))
    level = tf.math.floordiv(tf.math.log(tf.math.divide_no_nan(areas_sqrt, 224.0)),
                             tf.math.log(2.0)) + float(K0 - k_first)
    return tf.clip_by_value(tf.cast(level, tf.int32), 0, num_groups - 1)


def crop_at_stride(feature: tf.Tensor, boxes: tf.Tensor, stride: int, crop_size: int,
                   sample_offset: float) -> tf.Tensor:
    """[batch, boxes, crop, crop, ch]: every box cropped from one feature at its stride
    (Model Garden's bilinear crop on a one-level pyramid keyed log2(stride), so box
    scaling and clamping use that map's true size; the map's size must be static)."""
    return spatial_transform_ops.multilevel_crop_and_resize(
        {str(int(math.log2(stride))): feature}, boxes, output_size=crop_size,
        sample_offset=sample_offset)


def pick_crops(crops: Sequence[tf.Tensor], which: tf.Tensor) -> tf.Tensor:
    """Box b keeps crops[which[b]] ([batch, boxes] indices into the list)."""
    stacked = tf.stack(crops, axis=2)  # [batch, boxes, len(crops), crop, crop, ch]
    return tf.gather(stacked, which, axis=2, batch_dims=2)


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class GroupROIAligner(tf_keras.layers.Layer):
    """RoIAlign from the feature of each RoI's group, at that group's stride.

    Each distinct stride is cropped once for all boxes (Model Garden's bilinear
    crop on a one-level pyramid keyed log2(stride), so box scaling and clamping use that
    map's true size), then every box keeps the crop of its own group.
    """

    def __init__(self, feature_strides: Sequence[int], k_first: int = 2, crop_size: int = 7,
                 sample_offset: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        if k_first not in K_FIRST_CHOICES:
            raise ValueError(f"roi_aligner.k_first must be 1 (the paper's Fig. 2(b)) or 2 "
                             f"(FPN's rule), got {k_first!r}")
        strides = [int(s) for s in feature_strides]
        if len(strides) != NUM_GROUPS or any(s <= 0 or s & (s - 1) for s in strides):
            raise ValueError(f"GroupROIAligner needs {NUM_GROUPS} power-of-two strides, "
                             f"got {list(feature_strides)!r}")
        self._config_dict = dict(feature_strides=strides, k_first=k_first,
                                 crop_size=crop_size, sample_offset=sample_offset)
        self._unique = sorted(set(strides))
        self._group_to_unique = tf.constant([self._unique.index(s) for s in strides],
                                            tf.int32)

    def call(self, features: Mapping[str, tf.Tensor], boxes: tf.Tensor, training=None):
        cfg = self._config_dict
        crops = [crop_at_stride(features[GROUP_KEYS[cfg["feature_strides"].index(stride)]],
                                boxes, stride, cfg["crop_size"], cfg["sample_offset"])
                 for stride in self._unique]
        which = tf.gather(self._group_to_unique, roi_groups(boxes, cfg["k_first"]))
        return pick_crops(crops, which)

    def get_config(self):
        return {**super().get_config(), **self._config_dict}


class GroupAnchorRCNNParser(maskrcnn_input.Parser):
    """Model Garden's Mask R-CNN parser whose anchors and RPN targets follow the groups.

    The stock parser labels its own 2^l-stride anchors inline; this one relabels the
    same (augmented, clipped to max_num_instances) ground truth on the group anchors with
    Model Garden's RpnAnchorLabeler and the parser's own RPN settings.
    """

    def __init__(self, anchor_generator: GroupAnchorGenerator, **kwargs):
        super().__init__(**kwargs)
        self._group_anchors = anchor_generator

    def _anchors(self, image):
        return self._group_anchors(image.get_shape().as_list()[:2])

    def _parse_train_data(self, data):
        image, labels = super()._parse_train_data(data)
        anchors = self._anchors(image)
        valid = labels["gt_classes"] > 0
        labeler = mg_anchor.RpnAnchorLabeler(
            self._rpn_match_threshold, self._rpn_unmatched_threshold,
            self._rpn_batch_size_per_im, self._rpn_fg_fraction)
        scores, boxes = labeler.label_anchors(
            anchors, tf.boolean_mask(labels["gt_boxes"], valid),
            tf.cast(tf.boolean_mask(labels["gt_classes"], valid)[:, None], tf.float32))
        labels.update(anchor_boxes=anchors, rpn_score_targets=scores, rpn_box_targets=boxes)
        return image, labels

    def _parse_eval_data(self, data):
        image, labels = super()._parse_eval_data(data)
        labels["anchor_boxes"] = self._anchors(image)
        return image, labels


class MSNASFasterRCNN(maskrcnn_model.MaskRCNNModel):
    """MaskRCNNModel (no mask) whose default anchors follow the group layout."""

    def __init__(self, *args, feature_strides: Sequence[int], **kwargs):
        super().__init__(*args, **kwargs)
        self._config_dict["feature_strides"] = list(feature_strides)
        c = self._config_dict
        self._group_anchors = GroupAnchorGenerator(feature_strides, c["num_scales"],
                                                   c["aspect_ratios"], c["anchor_size"])

    def call(self, images, image_shape, anchor_boxes=None, gt_boxes=None, gt_classes=None,
             gt_masks=None, gt_outer_boxes=None, training=None):
        if anchor_boxes is None:
            anchors = self._group_anchors(images.get_shape().as_list()[1:3])
            anchor_boxes = {k: tf.tile(v[None], [tf.shape(images)[0], 1, 1, 1])
                            for k, v in anchors.items()}
        return super().call(images, image_shape, anchor_boxes=anchor_boxes,
                            gt_boxes=gt_boxes, gt_classes=gt_classes, gt_masks=gt_masks,
                            gt_outer_boxes=gt_outer_boxes, training=training)


def build_fasterrcnn(input_specs, model_config, l2_regularizer=None) -> tf_keras.Model:
    """Model Garden's Faster R-CNN; on an `msnas` backbone, with the group layout.

    The parts all come from Model Garden's `build_maskrcnn`; for MSNAS they are re-wrapped
    (same layers) with the group RoI aligner and group anchors.
    """
    if model_config.include_mask:
        raise ValueError("model.include_mask must be false: this detector is Faster R-CNN")
    model = mg_factory.build_maskrcnn(input_specs, model_config, l2_regularizer)
    if model_config.backbone.type != "msnas":
        return model
    strides = load_msnas(model_config.backbone.msnas.architecture).feature_strides
    c, a = model.get_config(), model_config.roi_aligner
    aligner = GroupROIAligner(strides, k_first=a.k_first, crop_size=a.crop_size,
                              sample_offset=a.sample_offset)
    return MSNASFasterRCNN(
        backbone=c["backbone"], decoder=c["decoder"], rpn_head=c["rpn_head"],
        detection_head=c["detection_head"], roi_generator=c["roi_generator"],
        roi_sampler=c["roi_sampler"], roi_aligner=aligner,
        detection_generator=c["detection_generator"],
        class_agnostic_bbox_pred=c["class_agnostic_bbox_pred"],
        cascade_class_ensemble=c["cascade_class_ensemble"], min_level=c["min_level"],
        max_level=c["max_level"], num_scales=c["num_scales"],
        aspect_ratios=c["aspect_ratios"], anchor_size=c["anchor_size"],
        feature_strides=strides)


def parser_kwargs(task_config, params) -> dict[str, Any]:
    """The arguments Model Garden's MaskRCNNTask gives its Parser (no mask)."""
    model, p = task_config.model, params.parser
    return dict(
        output_size=model.input_size[:2], min_level=model.min_level,
        max_level=model.max_level, num_scales=model.anchor.num_scales,
        aspect_ratios=model.anchor.aspect_ratios, anchor_size=model.anchor.anchor_size,
        rpn_match_threshold=p.rpn_match_threshold,
        rpn_unmatched_threshold=p.rpn_unmatched_threshold,
        rpn_batch_size_per_im=p.rpn_batch_size_per_im, rpn_fg_fraction=p.rpn_fg_fraction,
        aug_rand_hflip=p.aug_rand_hflip, aug_rand_vflip=p.aug_rand_vflip,
        aug_scale_min=p.aug_scale_min, aug_scale_max=p.aug_scale_max, aug_type=p.aug_type,
        skip_crowd_during_training=p.skip_crowd_during_training,
        max_num_instances=p.max_num_instances, include_mask=False,
        outer_boxes_scale=model.outer_boxes_scale, mask_crop_size=p.mask_crop_size,
        dtype=params.dtype)
