"""Quantization-aware versions of our detectors, with the float weights carried over.

The backbone (Model Garden's MobileNet blocks) goes through Model Garden's own QAT scheme
(`quantize_apply` with its layer transforms); the MnasFPN decoder and the shared-tower
head are rebuilt from their configs with `quantized=True`, which swaps their sub-layers
for tfmot-wrapped ones (see `kit.py`), and then receive the float weights one to one.
"""

from __future__ import annotations

import re

import tensorflow as tf
import tf_keras
from official.vision.modeling import retinanet_model

_QUANTIZER_VARIABLE = re.compile(r"(_min|_max|optimizer_step)(:\d+)?$")


class QuantizationError(ValueError):
    """A model part that has no quantization-aware version."""


def is_quantizer_variable(variable: tf.Variable) -> bool:
    return bool(_QUANTIZER_VARIABLE.search(variable.name))


def copy_float_weights(source: tf_keras.layers.Layer, target: tf_keras.layers.Layer) -> None:
    """Assigns `source`'s weights to the non-quantizer weights of `target`, in order."""
    model_weights = [w for w in target.weights if not is_quantizer_variable(w)]
    if len(model_weights) != len(source.weights):
        raise QuantizationError(
            f"{target.name}: {len(model_weights)} weights besides quantizer ranges, but the "
            f"float layer has {len(source.weights)}")
    for src, dst in zip(source.weights, model_weights):
        if src.shape != dst.shape:
            raise QuantizationError(f"{target.name}: weight {dst.name} has shape {dst.shape}, "
                                    f"the float {src.name} has {src.shape}")
        dst.assign(src)


def quantize_backbone(backbone: tf_keras.Model) -> tf_keras.Model:
    """Model Garden's QAT transform of a functional MobileNet-style backbone."""
    import tensorflow_model_optimization as tfmot
    from official.projects.qat.vision.modeling.layers import nn_layers
    from official.projects.qat.vision.quantization import schemes
    scope = {"L2": tf_keras.regularizers.l2,
             "BatchNormalizationWrapper": nn_layers.BatchNormalizationWrapper}
    try:
        with tfmot.quantization.keras.quantize_scope(scope):
            annotated = tfmot.quantization.keras.quantize_annotate_model(backbone)
            return tfmot.quantization.keras.quantize_apply(
                annotated, scheme=schemes.Default8BitQuantizeScheme())
    except (ValueError, RuntimeError) as e:
        raise QuantizationError(f"backbone {backbone.name} cannot be quantized: {e}") from e


def _quantized_copy(layer: tf_keras.layers.Layer, build) -> tf_keras.layers.Layer:
    config = layer.get_config()
    if "quantized" not in config:
        raise QuantizationError(
            f"{type(layer).__name__} ({layer.name}) has no quantization-aware version; "
            f"quantization-aware training supports the MnasFPN decoder and the shared-tower "
            f"head")
    quantized = type(layer).from_config({**config, "quantized": True})
    build(quantized)
    copy_float_weights(layer, quantized)
    return quantized


def quantize_detector(model: retinanet_model.RetinaNetModel) -> retinanet_model.RetinaNetModel:
    """A RetinaNetModel whose backbone, decoder and head carry fake-quant ops."""
    backbone = quantize_backbone(model.backbone)
    features = {k: tf_keras.Input(v.shape[1:]) for k, v in backbone.output.items()}
    decoder = (_quantized_copy(model.decoder, lambda d: d(features))
               if model.decoder is not None else None)
    decoded = decoder.output if decoder is not None else features
    head = _quantized_copy(model.head, lambda h: h(decoded))
    cfg = model.get_config()
    return retinanet_model.RetinaNetModel(
        backbone, decoder, head, model.detection_generator, min_level=cfg["min_level"],
        max_level=cfg["max_level"], num_scales=cfg["num_scales"],
        aspect_ratios=cfg["aspect_ratios"], anchor_size=cfg["anchor_size"])
