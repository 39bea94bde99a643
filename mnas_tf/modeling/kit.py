"""Where our layers get their Keras sub-layers: plain ones, or quantization-aware ones.

One layer definition serves float training and quantization-aware training (QAT): every
custom layer asks a kit for its convs, norms and for "quantize this tensor here". The
float kit returns the plain Keras layers (same names and weights as always, so float
checkpoints are unchanged) and its `quantize` is the identity. The QAT kit wraps the same
layers in tensorflow-model-optimization `QuantizeWrapperV2`s with Model Garden's 8-bit
quantize configs, placing fake-quant exactly where a full-integer TFLite graph has an
int8 tensor: after each op the converter does not fuse into the next one (conv outputs
feed BN, so BN's output is quantized; an activation after BN or an add is fused, so the
quantizer goes after the activation).
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf
import tf_keras


def _identity(x):
    return x


class FloatKit:
    """Plain Keras layers; `quantize` points are no-ops."""

    quantized = False

    def conv2d(self, *, quantize_output: bool = False, **kwargs) -> tf_keras.layers.Layer:
        del quantize_output
        return tf_keras.layers.Conv2D(**kwargs)

    def separable(self, *, quantize_output: bool = False, **kwargs) -> tf_keras.layers.Layer:
        del quantize_output
        return tf_keras.layers.SeparableConv2D(**kwargs)

    def depthwise(self, *, quantize_output: bool = False, **kwargs) -> tf_keras.layers.Layer:
        del quantize_output
        return tf_keras.layers.DepthwiseConv2D(**kwargs)

    def batch_norm(self, *, quantize_output: bool = False, **kwargs) -> tf_keras.layers.Layer:
        del quantize_output
        return tf_keras.layers.BatchNormalization(**kwargs)

    def quantize(self, name: str) -> Callable[[tf.Tensor], tf.Tensor]:
        del name
        return _identity


class QATKit(FloatKit):
    """The same layers wrapped for quantization-aware training (8-bit, per-channel weights)."""

    quantized = True

    @staticmethod
    def _configs():
        from official.projects.qat.vision.quantization import configs
        return configs

    def _wrap(self, layer: tf_keras.layers.Layer, config) -> tf_keras.layers.Layer:
        import tensorflow_model_optimization as tfmot
        return tfmot.quantization.keras.QuantizeWrapperV2(layer, config)

    def conv2d(self, *, quantize_output: bool = False, **kwargs) -> tf_keras.layers.Layer:
        configs = self._configs()
        # A fused activation (relu, sigmoid) is quantized where TFLite puts it; a linear
        # conv gets an output quantizer only when no BN follows it.
        activation_attrs = ["activation"] if kwargs.get("activation") not in (None, "linear") \
            else []
        return self._wrap(tf_keras.layers.Conv2D(**kwargs), configs.Default8BitConvQuantizeConfig(
            ["kernel"], activation_attrs, quantize_output))

    def separable(self, *, quantize_output: bool = False, **kwargs) -> tf_keras.layers.Layer:
        return QuantizedSeparableConv2D(quantize_output=quantize_output, **kwargs)

    def depthwise(self, *, quantize_output: bool = False, **kwargs) -> tf_keras.layers.Layer:
        """A linear depthwise conv (BN follows, or its output is quantized here)."""
        configs = self._configs()
        return self._wrap(tf_keras.layers.DepthwiseConv2D(**kwargs),
                          configs.Default8BitConvQuantizeConfig(["depthwise_kernel"], [],
                                                                quantize_output))

    def batch_norm(self, *, quantize_output: bool = False, **kwargs) -> tf_keras.layers.Layer:
        configs = self._configs()
        config = (configs.Default8BitOutputQuantizeConfig() if quantize_output
                  else configs.NoOpQuantizeConfig())
        return self._wrap(tf_keras.layers.BatchNormalization(**kwargs), config)

    def quantize(self, name: str) -> tf_keras.layers.Layer:
        """A layer that records its input's range and fake-quantizes it (an int8 tensor)."""
        configs = self._configs()
        return self._wrap(tf_keras.layers.Activation("linear", name=name),
                          configs.Default8BitOutputQuantizeConfig())


def kit_for(quantized: bool) -> FloatKit:
    return QATKit() if quantized else FloatKit()


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class QuantizedSeparableConv2D(tf_keras.layers.Layer):
    """SeparableConv2D as TFLite runs it: an int8 depthwise conv, then an int8 1x1 conv.

    Same weights as `tf_keras.layers.SeparableConv2D` in the same order (depthwise kernel,
    pointwise kernel, bias), so float weights copy over one to one.
    """

    def __init__(self, filters: int, kernel_size: Any, quantize_output: bool = False,
                 padding: str = "same", use_bias: bool = True, bias_initializer: Any = "zeros",
                 depthwise_initializer: Any = "glorot_uniform",
                 pointwise_initializer: Any = "glorot_uniform", depthwise_regularizer: Any = None,
                 pointwise_regularizer: Any = None, **kwargs):
        super().__init__(**kwargs)
        import tensorflow_model_optimization as tfmot
        from official.projects.qat.vision.quantization import configs
        self._config = dict(
            filters=filters, kernel_size=kernel_size, quantize_output=quantize_output,
            padding=padding, use_bias=use_bias,
            bias_initializer=tf_keras.initializers.serialize(
                tf_keras.initializers.get(bias_initializer)),
            depthwise_initializer=tf_keras.initializers.serialize(
                tf_keras.initializers.get(depthwise_initializer)),
            pointwise_initializer=tf_keras.initializers.serialize(
                tf_keras.initializers.get(pointwise_initializer)),
            depthwise_regularizer=tf_keras.regularizers.serialize(depthwise_regularizer)
            if depthwise_regularizer is not None else None,
            pointwise_regularizer=tf_keras.regularizers.serialize(pointwise_regularizer)
            if pointwise_regularizer is not None else None)
        wrap = tfmot.quantization.keras.QuantizeWrapperV2
        self.depthwise = wrap(
            tf_keras.layers.DepthwiseConv2D(
                kernel_size, padding=padding, use_bias=False,
                depthwise_initializer=depthwise_initializer,
                depthwise_regularizer=depthwise_regularizer, name="depthwise"),
            configs.Default8BitConvQuantizeConfig(["depthwise_kernel"], [], True))
        self.pointwise = wrap(
            tf_keras.layers.Conv2D(
                filters, 1, use_bias=use_bias, bias_initializer=bias_initializer,
                kernel_initializer=pointwise_initializer,
                kernel_regularizer=pointwise_regularizer, name="pointwise"),
            configs.Default8BitConvQuantizeConfig(["kernel"], [], quantize_output))

    def call(self, inputs, training=None):
        return self.pointwise(self.depthwise(inputs, training=training), training=training)

    def get_config(self) -> dict:
        return {**super().get_config(), **self._config}
