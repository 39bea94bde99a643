"""Builds detectors from configs through Model Garden's registries.

`build_detector` is `official.vision.modeling.factory.build_retinanet` plus one option:
a predictor with one tower shared by boxes and classes. `build_raw_detector` wraps the
trained parts into a functional model with raw box/class outputs (no anchors decoding, no
NMS): the paper's latency convention and the fast path to TFLite.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tf_keras
from official.vision.modeling import backbones, decoders, factory, retinanet_model
from official.vision.modeling.layers import detection_generator

from mnas_tf.modeling.heads import WeightSharedSeparableHead
from mnas_tf.modeling.ssdlite import SSDLitePredictor


def num_anchors_per_location(model_config) -> int:
    return len(model_config.anchor.aspect_ratios) * model_config.anchor.num_scales


def build_head(model_config, l2_regularizer=None) -> tf_keras.layers.Layer:
    """The shared-tower separable predictor configured by `model_config.head`, or SSD's
    per-map predictor with `head.separate_level_predictors`."""
    head_cfg, norm = model_config.head, model_config.norm_activation
    if getattr(head_cfg, "separate_level_predictors", False):
        return SSDLitePredictor(
            min_level=model_config.min_level, max_level=model_config.max_level,
            num_classes=model_config.num_classes,
            num_anchors_per_location=num_anchors_per_location(model_config),
            use_sync_bn=norm.use_sync_bn,
            norm_momentum=(head_cfg.norm_momentum if head_cfg.norm_momentum is not None
                           else norm.norm_momentum),
            norm_epsilon=(head_cfg.norm_epsilon if head_cfg.norm_epsilon is not None
                          else norm.norm_epsilon),
            kernel_regularizer=l2_regularizer, name="head")
    return WeightSharedSeparableHead(
        min_level=model_config.min_level, max_level=model_config.max_level,
        num_classes=model_config.num_classes,
        num_anchors_per_location=num_anchors_per_location(model_config),
        num_convs=head_cfg.num_convs, num_filters=head_cfg.num_filters,
        activation=norm.activation, use_sync_bn=norm.use_sync_bn,
        norm_momentum=(head_cfg.norm_momentum if head_cfg.norm_momentum is not None
                       else norm.norm_momentum),
        norm_epsilon=(head_cfg.norm_epsilon if head_cfg.norm_epsilon is not None
                      else norm.norm_epsilon),
        kernel_regularizer=l2_regularizer, name="head")


def build_detector(input_specs: tf_keras.layers.InputSpec, model_config,
                   l2_regularizer: Optional[tf_keras.regularizers.Regularizer] = None
                   ) -> retinanet_model.RetinaNetModel:
    """A RetinaNetModel whose parts all come from Model Garden's factories."""
    backbone = backbones.factory.build_backbone(
        input_specs=input_specs, backbone_config=model_config.backbone,
        norm_activation_config=model_config.norm_activation, l2_regularizer=l2_regularizer)
    decoder = decoders.factory.build_decoder(
        input_specs=backbone.output_specs, model_config=model_config,
        l2_regularizer=l2_regularizer)
    if model_config.backbone.type == "msnas":
        from mnas_tf.modeling.msnas import as_msnas_detector
        return as_msnas_detector(factory.build_retinanet(
            input_specs, model_config, l2_regularizer, backbone=backbone, decoder=decoder),
            model_config)
    if not (getattr(model_config.head, "share_box_class_tower", False)
            or getattr(model_config.head, "separate_level_predictors", False)):
        return factory.build_retinanet(input_specs, model_config, l2_regularizer,
                                       backbone=backbone, decoder=decoder)
    head = build_head(model_config, l2_regularizer)
    features = backbone(tf_keras.Input(input_specs.shape[1:]))
    head(decoder(features) if decoder else features)  # creates the weights
    gen = model_config.detection_generator
    tflite_cfg = gen.tflite_post_processing.as_dict()
    tflite_cfg["input_image_size"] = (input_specs.shape[1], input_specs.shape[2])
    generator = detection_generator.MultilevelDetectionGenerator(
        apply_nms=gen.apply_nms, pre_nms_top_k=gen.pre_nms_top_k,
        pre_nms_score_threshold=gen.pre_nms_score_threshold,
        nms_iou_threshold=gen.nms_iou_threshold, max_num_detections=gen.max_num_detections,
        nms_version=gen.nms_version, use_cpu_nms=gen.use_cpu_nms,
        soft_nms_sigma=gen.soft_nms_sigma, tflite_post_processing_config=tflite_cfg,
        return_decoded=gen.return_decoded, use_class_agnostic_nms=gen.use_class_agnostic_nms,
        box_coder_weights=gen.box_coder_weights)
    return retinanet_model.RetinaNetModel(
        backbone, decoder, head, generator, min_level=model_config.min_level,
        max_level=model_config.max_level, num_scales=model_config.anchor.num_scales,
        aspect_ratios=model_config.anchor.aspect_ratios,
        anchor_size=model_config.anchor.anchor_size)


def build_raw_detector(model: retinanet_model.RetinaNetModel, input_size: tuple[int, int],
                       batch_size: Optional[int] = 1) -> tf_keras.Model:
    """Functional model image -> (boxes [B, N, 4], class logits [B, N, K]), weights shared.

    Anchors are ordered level-major, then row, column, anchor: Model Garden's order.
    """
    image = tf_keras.Input(shape=(*input_size, 3), batch_size=batch_size, name="image")
    features = model.backbone(image)
    if model.decoder is not None:
        features = model.decoder(features)
    scores, boxes, _ = model.head(features)
    levels = sorted(scores, key=int)
    num_classes = model.head.get_config()["num_classes"]
    flat_boxes = [tf_keras.layers.Reshape((-1, 4), name=f"boxes_{l}")(boxes[l]) for l in levels]
    flat_scores = [tf_keras.layers.Reshape((-1, num_classes), name=f"classes_{l}")(scores[l])
                   for l in levels]
    outputs = {
        "raw_boxes": tf_keras.layers.Concatenate(axis=1, name="raw_boxes")(flat_boxes),
        "raw_scores": tf_keras.layers.Concatenate(axis=1, name="raw_scores")(flat_scores)}
    return tf_keras.Model(inputs=image, outputs=outputs, name="raw_detector")
