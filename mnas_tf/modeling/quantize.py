"""Quantization-aware versions of our detectors, with the float weights carried over.

The backbone (Model Garden's MobileNet blocks) goes through Model Garden's own QAT scheme
(`quantize_apply` with its layer transforms). Our layers (the MnasFPN / NAS-FPN decoder,
the shared-tower head, SSDLite's per-map predictor) are rebuilt from their configs with
`quantized=True`, which swaps their sub-layers for tfmot-wrapped ones (see `kit.py`), and
then receive the float weights one to one. Functional decoders of plain Keras layers
(Model Garden's FPN, SSDLite's extra layers) are annotated layer by layer as Model Garden's
`build_qat_retinanet` does for FPN; its RetinaNet head has Model Garden's quantized twin.
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


def quantize_functional(model: tf_keras.Model) -> tf_keras.Model:
    """A functional model of plain Keras layers (FPN, SSDLite extras) with fake-quant on
    every layer, Model Garden's FPN recipe; the input range is left to the producer. The
    annotated clone wraps the original layers, so quantize_apply copies their weights."""
    import tensorflow_model_optimization as tfmot
    from official.projects.qat.vision.modeling import factory as qat_factory
    from official.projects.qat.vision.modeling.layers import nn_layers
    scope = {"L2": tf_keras.regularizers.l2,
             "BatchNormalizationWrapper": nn_layers.BatchNormalizationWrapper}
    try:
        with tfmot.quantization.keras.quantize_scope(scope):
            annotate = qat_factory._clone_function_for_fpn  # pylint: disable=protected-access
            annotated = tf_keras.models.clone_model(model, clone_function=annotate)
            quantized = tfmot.quantization.keras.quantize_apply(annotated)
            quantized = tfmot.quantization.keras.remove_input_range(quantized)
    except (ValueError, RuntimeError, TypeError) as e:
        raise QuantizationError(f"{model.name} cannot be quantized: {e}") from e
    try:
        _copy_layer_by_layer(model, quantized)
    except QuantizationError:
        # Model Garden's FPN comes out reordered (and its separable convs split): keep
        # quantize_apply's own copy there, as Model Garden's build_qat_retinanet does.
        pass
    return quantized


def _model_weights(layer) -> list:
    return [w for w in layer.weights if not is_quantizer_variable(w)]


def _copy_layer_by_layer(source: tf_keras.Model, quantized: tf_keras.Model) -> None:
    """The float weights into the layers quantize_apply made, layer by layer in graph
    order (its own copy goes by flat position and can swap same-shaped kernels). A
    SeparableConv2D comes out as a depthwise and a 1x1 conv: its weights are split."""
    sources = [layer for layer in source.layers if layer.weights]
    targets = [layer for layer in quantized.layers if _model_weights(layer)]
    t = 0
    for layer in sources:
        weights = list(layer.weights)
        if isinstance(layer, tf_keras.layers.SeparableConv2D) and t + 1 < len(targets) and \
                len(_model_weights(targets[t])) == 1:
            pieces = [(targets[t], weights[:1]), (targets[t + 1], weights[1:])]
            t += 2
        else:
            pieces = [(targets[t] if t < len(targets) else None, weights)]
            t += 1
        for target, values in pieces:
            dst = _model_weights(target) if target is not None else []
            if [tuple(v.shape) for v in values] != [tuple(d.shape) for d in dst]:
                raise QuantizationError(f"{source.name}: layer {layer.name} does not match "
                                        f"its quantized counterpart")
            for src, d in zip(values, dst):
                d.assign(src)
    if t != len(targets):
        raise QuantizationError(f"{source.name}: {len(targets) - t} quantized layers left "
                                f"without float weights")


def _quantized_decoder(decoder, features):
    if decoder is None:
        return None
    if "quantized" in decoder.get_config():
        return _quantized_copy(decoder, lambda d: d(features))
    if getattr(decoder, "_is_graph_network", False):
        return quantize_functional(decoder)
    return _quantized_copy(decoder, lambda d: d(features))  # refused with the reason


def _quantized_head(head, features):
    from official.projects.qat.vision.modeling.heads import dense_prediction_heads as qat_heads
    from official.projects.qat.vision.quantization import helper
    from official.vision.modeling.heads import dense_prediction_heads
    if isinstance(head, dense_prediction_heads.RetinaNetHead):
        quantized = qat_heads.RetinaNetHeadQuantized.from_config(head.get_config())
        quantized(features)
        helper.copy_original_weights(head, quantized)
        return quantized
    return _quantized_copy(head, lambda h: h(features))


def _quantized_copy(layer: tf_keras.layers.Layer, build) -> tf_keras.layers.Layer:
    config = layer.get_config()
    if "quantized" not in config:
        raise QuantizationError(
            f"{type(layer).__name__} ({layer.name}) has no quantization-aware version; "
            f"quantization-aware training supports the MnasFPN / NAS-FPN decoder, FPN, the "
            f"SSDLite extras and predictor, and the shared-tower and RetinaNet heads")
    quantized = type(layer).from_config({**config, "quantized": True})
    build(quantized)
    copy_float_weights(layer, quantized)
    return quantized


def quantize_detector(model: retinanet_model.RetinaNetModel) -> retinanet_model.RetinaNetModel:
    """A RetinaNetModel whose backbone, decoder and head carry fake-quant ops."""
    backbone = quantize_backbone(model.backbone)
    features = {k: tf_keras.Input(v.shape[1:]) for k, v in backbone.output.items()}
    decoder = _quantized_decoder(model.decoder, features)
    decoded = decoder(features) if decoder is not None else features
    head = _quantized_head(model.head, decoded)
    cfg = model.get_config()
    return retinanet_model.RetinaNetModel(
        backbone, decoder, head, model.detection_generator, min_level=cfg["min_level"],
        max_level=cfg["max_level"], num_scales=cfg["num_scales"],
        aspect_ratios=cfg["aspect_ratios"], anchor_size=cfg["anchor_size"])
