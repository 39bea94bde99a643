"""SSDLite (MobileNetV2 paper, reference §3.1) on Model Garden: backbone taps, extra
layers and the per-map separable predictor, each registered where Model Garden looks.

- `MobileNetSSDLite` (backbone `mobilenet_ssdlite`): Model Garden's MobileNet, rewired so
  that the expansion output of the first stride-32 block (`layer_15/expansion_output`,
  576 channels for V2) is level 4 and the final 1x1 conv (1280 channels) is level 5.
- `SSDLiteExtras` (decoder `ssdlite`): levels 6.. made by 1x1 to depth/2, 3x3 stride-2
  depthwise, 1x1 to depth, each with BN + ReLU6 (512/256/256/128 by default).
- `SSDLitePredictor` (head option `separate_level_predictors`): per map, not shared,
  a depthwise 3x3 + BN + ReLU6 then a 1x1 conv with bias, for boxes and for classes.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import tensorflow as tf
import tf_keras
from official.vision.modeling.backbones import factory as backbone_factory
from official.vision.modeling.decoders import factory as decoder_factory
from official.vision.modeling.layers import nn_blocks

from mnas_tf.modeling.backbones import model_garden_mobilenet
from mnas_tf.modeling.kit import kit_for
from mnas_tf.modeling.layers import ConfigDictModel, ConfigurableLayer, fresh

SSD_INIT = {"class_name": "TruncatedNormal", "config": {"stddev": 0.03}}


def _expansion_split(full: tf_keras.Model) -> nn_blocks.InvertedBottleneckBlock:
    """The block that reads the level-4 endpoint: SSDLite taps its expansion output."""
    level4 = full.output["4"]
    for layer in full.layers:
        for node in layer._inbound_nodes:  # pylint: disable=protected-access
            if any(t is level4 for t in tf.nest.flatten(node.input_tensors)) and \
                    isinstance(layer, nn_blocks.InvertedBottleneckBlock):
                return layer
    raise ValueError(f"{full.name}: no inverted bottleneck block reads the level-4 endpoint")


def _run_block_from_expansion(block: nn_blocks.InvertedBottleneckBlock, x: tf.Tensor):
    """The rest of an inverted bottleneck after its expansion (depthwise, SE, project)."""
    # pylint: disable=protected-access
    x = block._depthwise_activation_layer(block._norm1(block._conv1(x)))
    if block._squeeze_excitation:
        x = block._squeeze_excitation(x)
    return block._norm2(block._conv2(x))


def tap_ssdlite(full: tf_keras.Model) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Replays Model Garden MobileNet `full` layer by layer with the same layer objects,
    splitting the block after the level-4 endpoint at its expansion: returns the new input
    and {'4': expansion output, '5': the final conv}."""
    split = _expansion_split(full)
    x = inputs = tf_keras.Input(shape=full.input_shape[1:], batch_size=full.input_shape[0])
    previous, expansion = full.layers[0], None
    for layer in full.layers[1:]:
        parents = [l for node in layer._inbound_nodes  # pylint: disable=protected-access
                   for l in tf.nest.flatten(node.inbound_layers)]
        if parents != [previous]:
            raise ValueError(f"{full.name}: layer {layer.name} does not follow "
                             f"{previous.name}; SSDLite needs a chain-shaped MobileNet")
        if layer is split:
            # pylint: disable=protected-access
            expansion = layer._activation_layer(layer._norm0(layer._conv0(x)))
            x = _run_block_from_expansion(layer, expansion)
        else:
            x = layer(x)
        previous = layer
    return inputs, {"4": expansion, "5": x}


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class MobileNetSSDLite(ConfigDictModel, tf_keras.Model):
    """MobileNet whose level 4 is the 576-ch expansion output and level 5 the last conv.

    The graph is Model Garden's layer chain replayed with the same layer objects (same
    weights and names), with the stride-32 block split after its expansion so the
    expansion is computed once and feeds both level 4 and the rest of the network.
    """

    def __init__(self, model_id: str = "MobileNetV2", filter_size_scale: float = 1.0,
                 input_specs: Any = None, norm_momentum: float = 0.99,
                 norm_epsilon: float = 0.001, use_sync_bn: bool = False,
                 kernel_regularizer: Any = None, **kwargs):
        full, self._config_dict = model_garden_mobilenet(
            model_id=model_id, filter_size_scale=filter_size_scale, input_specs=input_specs,
            norm_momentum=norm_momentum, norm_epsilon=norm_epsilon, use_sync_bn=use_sync_bn,
            kernel_regularizer=kernel_regularizer)
        inputs, outputs = tap_ssdlite(full)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self._output_specs = {k: v.get_shape() for k, v in outputs.items()}

    @property
    def output_specs(self) -> Mapping[str, tf.TensorShape]:
        return self._output_specs


@backbone_factory.register_backbone_builder("mobilenet_ssdlite")
def build_mobilenet_ssdlite(input_specs, backbone_config, norm_activation_config,
                            l2_regularizer=None) -> tf_keras.Model:
    """Model Garden backbone factory entry for `backbone.type: mobilenet_ssdlite`."""
    if backbone_config.type != "mobilenet_ssdlite":
        raise ValueError(f"inconsistent backbone type {backbone_config.type}")
    cfg = backbone_config.get()
    return MobileNetSSDLite(
        model_id=cfg.model_id, filter_size_scale=cfg.filter_size_scale,
        input_specs=input_specs, norm_momentum=norm_activation_config.norm_momentum,
        norm_epsilon=norm_activation_config.norm_epsilon,
        use_sync_bn=norm_activation_config.use_sync_bn, kernel_regularizer=l2_regularizer)


def _conv_bn_relu6(x, filters, kernel, strides, name, depthwise, norm, regularizer):
    if depthwise:
        x = tf_keras.layers.DepthwiseConv2D(
            kernel, strides=strides, padding="same", use_bias=False,
            depthwise_initializer=fresh(SSD_INIT), name=f"{name}_depthwise")(x)
    else:
        x = tf_keras.layers.Conv2D(
            filters, kernel, strides=strides, padding="same", use_bias=False,
            kernel_initializer=fresh(SSD_INIT), kernel_regularizer=regularizer,
            name=f"{name}_conv")(x)
    x = tf_keras.layers.BatchNormalization(name=f"{name}_bn", **norm)(x)
    return tf_keras.layers.ReLU(6.0, name=f"{name}_relu6")(x)


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class SSDLiteExtras(ConfigDictModel, tf_keras.Model):
    """Backbone levels passed through, then one extra level per entry of `layer_depths`:
    1x1 conv to depth/2, 3x3 stride-2 depthwise, 1x1 conv to depth (BN + ReLU6 each)."""

    def __init__(self, input_specs: Mapping[str, Any], min_level: int = 4,
                 layer_depths: Sequence[int] = (512, 256, 256, 128), use_sync_bn: bool = False,
                 norm_momentum: float = 0.99, norm_epsilon: float = 0.001,
                 kernel_regularizer: Any = None, **kwargs):
        regularizer = tf_keras.regularizers.get(kernel_regularizer)
        input_specs = {str(k): tf.TensorShape(v) for k, v in input_specs.items()}
        self._config_dict = dict(
            input_specs={k: v.as_list() for k, v in input_specs.items()}, min_level=min_level,
            layer_depths=[int(d) for d in layer_depths], use_sync_bn=use_sync_bn,
            norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
            kernel_regularizer=(tf_keras.regularizers.serialize(regularizer)
                                if regularizer is not None else None))
        levels = sorted(int(k) for k in input_specs if k.isdigit() and int(k) >= min_level)
        if not levels or levels[0] != min_level or levels != list(range(min_level,
                                                                        levels[-1] + 1)):
            raise ValueError(f"SSDLite needs consecutive backbone levels from {min_level}; "
                             f"the backbone provides {sorted(input_specs)}")
        norm = dict(momentum=norm_momentum, epsilon=norm_epsilon, synchronized=use_sync_bn)
        inputs = {str(l): tf_keras.Input(shape=input_specs[str(l)][1:], name=f"level_{l}")
                  for l in levels}
        outputs = dict(inputs)
        x, level = inputs[str(levels[-1])], levels[-1]
        for depth in self._config_dict["layer_depths"]:
            level += 1
            name = f"extra_level_{level}"
            x = _conv_bn_relu6(x, depth // 2, 1, 1, f"{name}_1x1", False, norm, regularizer)
            x = _conv_bn_relu6(x, None, 3, 2, f"{name}_3x3", True, norm, regularizer)
            x = _conv_bn_relu6(x, depth, 1, 1, f"{name}_project", False, norm, regularizer)
            outputs[str(level)] = x
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self._output_specs = {k: v.get_shape() for k, v in outputs.items()}

    @property
    def output_specs(self) -> Mapping[str, tf.TensorShape]:
        return self._output_specs


def build_ssdlite_decoder(input_specs, model_config, l2_regularizer=None, **kwargs):
    """Model Garden decoder factory entry for `decoder.type: ssdlite`."""
    if model_config.decoder.type != "ssdlite":
        raise ValueError(f"inconsistent decoder type {model_config.decoder.type}")
    cfg = model_config.decoder.get()
    top = model_config.min_level + len(input_specs) - 1 + len(cfg.layer_depths)
    if top != model_config.max_level:
        raise ValueError(f"SSDLite makes levels {model_config.min_level}..{top} (backbone "
                         f"levels + {len(cfg.layer_depths)} extra layers) but the model is "
                         f"configured for max_level {model_config.max_level}")
    norm = model_config.norm_activation
    return SSDLiteExtras(input_specs=input_specs, min_level=model_config.min_level,
                         layer_depths=cfg.layer_depths, use_sync_bn=norm.use_sync_bn,
                         norm_momentum=norm.norm_momentum, norm_epsilon=norm.norm_epsilon,
                         kernel_regularizer=l2_regularizer)


decoder_factory.register_decoder_builder("ssdlite")(build_ssdlite_decoder)


def _takes_training(layer) -> bool:
    """BN (plain or quantization-wrapped) behaves differently in training."""
    inner = getattr(layer, "layer", layer)
    return isinstance(inner, tf_keras.layers.BatchNormalization) or \
        isinstance(layer, tf_keras.layers.Wrapper)


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class SSDLitePredictor(ConfigurableLayer):
    """SSD's convolutional box predictor with `use_depthwise`, zero tower layers: every
    map has its own box and class predictors (depthwise 3x3 + BN + ReLU6, 1x1 with bias).
    `quantized=True` gives the same layers with fake-quant where int8 TFLite has int8
    tensors (after the fused ReLU6, and the 1x1 outputs)."""

    def __init__(self, min_level: int, max_level: int, num_classes: int,
                 num_anchors_per_location: int, kernel_size: int = 3,
                 norm_momentum: float = 0.997, norm_epsilon: float = 0.001,
                 use_sync_bn: bool = False, kernel_regularizer: Any = None,
                 prior_probability: float = 0.01, quantized: bool = False, **kwargs):
        super().__init__(**kwargs)
        self._record(min_level=min_level, max_level=max_level, num_classes=num_classes,
                     num_anchors_per_location=num_anchors_per_location, kernel_size=kernel_size,
                     norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                     use_sync_bn=use_sync_bn, kernel_regularizer=kernel_regularizer,
                     prior_probability=prior_probability, quantized=quantized)
        kit = kit_for(quantized)
        regularizer = self._config_dict["kernel_regularizer"]
        self._levels = [str(l) for l in range(min_level, max_level + 1)]
        prior_bias = -math.log((1 - prior_probability) / prior_probability)
        widths = {"box": (4 * num_anchors_per_location, "zeros"),
                  "class": (num_classes * num_anchors_per_location,
                            tf_keras.initializers.Constant(prior_bias))}
        self._predictors = {}
        for level in self._levels:
            for kind, (width, bias) in widths.items():
                name = f"{kind}_level_{level}"
                self._predictors[name] = [
                    kit.depthwise(
                        kernel_size=kernel_size, padding="same", use_bias=False,
                        depthwise_initializer=fresh(SSD_INIT), name=f"{name}_depthwise"),
                    kit.batch_norm(
                        momentum=norm_momentum, epsilon=norm_epsilon, synchronized=use_sync_bn,
                        name=f"{name}_bn"),
                    tf_keras.layers.ReLU(6.0, name=f"{name}_relu6"),
                    kit.quantize(f"{name}_relu6_quant"),
                    kit.conv2d(
                        filters=width, kernel_size=1, kernel_initializer=fresh(SSD_INIT),
                        bias_initializer=bias, kernel_regularizer=regularizer,
                        quantize_output=True, name=f"{name}_conv")]

    def call(self, features: Mapping[str, tf.Tensor], training=None):
        outputs = {"box": {}, "class": {}}
        for level in self._levels:
            for kind in outputs:
                x = features[level]
                for layer in self._predictors[f"{kind}_level_{level}"]:
                    x = layer(x, training=training) if _takes_training(layer) else layer(x)
                outputs[kind][level] = x
        return outputs["class"], outputs["box"], {}
