"""Cell building blocks: SDO resampling, squeeze-excite merge, the MnasFPN block (also
No-Expand, Conn-Search and No-SDO) and the NAS-FPN(-Lite) block.

Every layer stores its constructor arguments and rebuilds from them (`get_config` /
`from_config`), with initializers and regularizers serialised so the config is JSON.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import tensorflow as tf
import tf_keras

from mnas_tf.modeling.kit import FloatKit, kit_for

# The reference extractor's hard-coded hyper-parameters (reference §1.7).
SEPARABLE_INIT_STDDEV = 0.536  # He-normal for a 3x3 depthwise, sqrt(2/9)/0.88.


def separable_initializer() -> tf_keras.initializers.Initializer:
    return tf_keras.initializers.TruncatedNormal(stddev=SEPARABLE_INIT_STDDEV)


def fresh(initializer: Any) -> tf_keras.initializers.Initializer:
    """A new instance per layer: a reused unseeded instance gives same-shaped layers the same
    initial weights."""
    initializer = tf_keras.initializers.get(initializer)
    return initializer.__class__.from_config(initializer.get_config())


def plain(value: Any) -> Any:
    """Strips Keras' attribute-tracking wrappers (ListWrapper, _DictWrapper) for JSON."""
    if isinstance(value, Mapping) or hasattr(value, "items"):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListWrapper":
        return [plain(v) for v in value]
    return value


class ConfigurableLayer(tf_keras.layers.Layer):
    """Records constructor arguments; (de)serialises initializers and regularizers."""

    _OBJECT_ARGS = {
        "kernel_initializer": tf_keras.initializers,
        "kernel_regularizer": tf_keras.regularizers,
    }

    def _record(self, **config: Any) -> None:
        for key, module in self._OBJECT_ARGS.items():
            if key in config and config[key] is not None:
                config[key] = module.get(config[key])
        self._config_dict = config

    def get_config(self) -> dict[str, Any]:
        config = plain(self._config_dict)
        for key, module in self._OBJECT_ARGS.items():
            if config.get(key) is not None:
                config[key] = module.serialize(config[key])
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ConfigurableLayer":
        return cls(**config)


class ConfigDictModel:
    """Mixin for functional models that rebuild themselves from `self._config_dict`."""

    def get_config(self) -> dict[str, Any]:
        return plain(self._config_dict)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


def batch_norm(name: str, momentum: float, epsilon: float, synchronized: bool,
               kit: FloatKit = FloatKit(), quantize_output: bool = False):
    return kit.batch_norm(momentum=momentum, epsilon=epsilon, synchronized=synchronized,
                          name=name, quantize_output=quantize_output)


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class SDOResample(ConfigurableLayer):
    """Brings a feature to another level with F channels, running the 1x1 conv small.

    Size-Dependent Ordering (paper §3.2): a finer input is max-pooled (3x3, stride
    2^dlevel, SAME) *before* the 1x1 conv + BN; a same-level or coarser input gets the
    1x1 conv + BN first and is then nearest-neighbour upsampled. With `sdo=False` (the
    paper's No-SDO ablation) the 1x1 conv + BN always runs first, at the input resolution.
    """

    def __init__(self, input_level: int, output_level: int, filters: int,
                 norm_momentum: float = 0.99, norm_epsilon: float = 0.01,
                 use_sync_bn: bool = False, kernel_initializer: Any = "he_normal",
                 kernel_regularizer: Any = None, quantized: bool = False, sdo: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self._record(input_level=input_level, output_level=output_level, filters=filters,
                     norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                     use_sync_bn=use_sync_bn, kernel_initializer=kernel_initializer,
                     kernel_regularizer=kernel_regularizer, quantized=quantized, sdo=sdo)
        cfg = self._config_dict
        kit = kit_for(quantized)
        step = output_level - input_level
        self._pool_first = sdo and step > 0
        pool = (tf_keras.layers.MaxPool2D(3, strides=2 ** step, padding="same", name="pool")
                if step > 0 else None)
        if self._pool_first:
            self._pool = pool
        self._conv = kit.conv2d(
            filters=filters, kernel_size=1, use_bias=False,
            kernel_initializer=fresh(cfg["kernel_initializer"]),
            kernel_regularizer=cfg["kernel_regularizer"], name="conv1x1")
        self._bn = batch_norm("bn", norm_momentum, norm_epsilon, use_sync_bn, kit,
                              quantize_output=True)
        if not self._pool_first:
            self._pool = pool
        self._upsample = (tf_keras.layers.UpSampling2D(2 ** -step, interpolation="nearest",
                                                       name="upsample")
                          if step < 0 else None)

    def call(self, x, training=None):
        if self._pool_first:
            x = self._pool(x)
        x = self._bn(self._conv(x), training=training)
        if self._pool is not None and not self._pool_first:
            x = self._pool(x)
        if self._upsample is not None:
            x = self._upsample(x)
        return x


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class SqueezeExciteMerge(ConfigurableLayer):
    """Merges two features as a + b * SE(a): NAS-FPN's global attention, with learned gating.

    NAS-FPN gates one input by the sigmoid of the other's spatial max; here the gate is a
    squeeze-excite of `a` (global average pool, 1x1 reduce + ReLU, 1x1 expand, sigmoid),
    the "SE" merge option of the MnasFPN search space. It is defined for exactly 2 inputs.
    """

    def __init__(self, filters: int, reduction: int = 4, kernel_initializer: Any = "he_normal",
                 kernel_regularizer: Any = None, quantized: bool = False, **kwargs):
        super().__init__(**kwargs)
        self._record(filters=filters, reduction=reduction,
                     kernel_initializer=kernel_initializer, kernel_regularizer=kernel_regularizer,
                     quantized=quantized)
        cfg = self._config_dict
        kit = kit_for(quantized)
        squeezed = max(8, filters // reduction)
        self._reduce = kit.conv2d(
            filters=squeezed, kernel_size=1, activation="relu",
            kernel_initializer=fresh(cfg["kernel_initializer"]),
            kernel_regularizer=cfg["kernel_regularizer"], name="se_reduce")
        self._expand = kit.conv2d(
            filters=filters, kernel_size=1, activation="sigmoid",
            kernel_initializer=fresh(cfg["kernel_initializer"]),
            kernel_regularizer=cfg["kernel_regularizer"], name="se_expand")
        self._q_squeeze = kit.quantize("squeeze_quant")
        self._q_gated = kit.quantize("gated_quant")

    def call(self, inputs: Sequence[tf.Tensor]):
        """The final add is left unquantized: the block applies ReLU6 (fused) next."""
        if len(inputs) != 2:
            raise ValueError(f"SqueezeExciteMerge takes exactly 2 inputs, got {len(inputs)}")
        a, b = inputs
        squeezed = self._q_squeeze(tf.reduce_mean(a, axis=[1, 2], keepdims=True))
        gate = self._expand(self._reduce(squeezed))
        return a + self._q_gated(b * gate)


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class MnasFPNBlock(ConfigurableLayer):
    """One searched block: SDO-resample inputs to F, merge, ReLU6, separable conv to C, BN.

    Any path from an input through this block is an inverted residual: expand to F at
    low resolution, depthwise kxk, project to C, linear output (paper §3.1).
    """

    def __init__(self, input_levels: Sequence[int], level: int, expansion: int, channels: int,
                 merge: str = "sum", kernel: int = 3, norm_momentum: float = 0.99,
                 norm_epsilon: float = 0.01, use_sync_bn: bool = False,
                 kernel_regularizer: Any = None, quantized: bool = False, sdo: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self._record(input_levels=[int(v) for v in input_levels], level=level,
                     expansion=expansion, channels=channels, merge=merge, kernel=kernel,
                     norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                     use_sync_bn=use_sync_bn, kernel_regularizer=kernel_regularizer,
                     quantized=quantized, sdo=sdo)
        regularizer = self._config_dict["kernel_regularizer"]
        kit = kit_for(quantized)
        bn_args = dict(norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                       use_sync_bn=use_sync_bn, quantized=quantized)
        self._resamplers = [
            SDOResample(lvl, level, expansion, kernel_regularizer=regularizer,
                        name=f"input_{i}", sdo=sdo, **bn_args)
            for i, lvl in enumerate(self._config_dict["input_levels"])]
        if merge == "se":
            self._se = SqueezeExciteMerge(expansion, kernel_regularizer=regularizer,
                                          quantized=quantized, name="se")
        elif merge != "sum":
            raise ValueError(f"merge must be 'sum' or 'se', got {merge!r}")
        # partial sums of 3+ inputs are int8 tensors; the last sum has ReLU6 fused into it
        self._q_partial = [kit.quantize(f"sum_{i}_quant")
                           for i in range(len(self._resamplers) - 2)]
        self._q_merged = kit.quantize("merged_quant")
        self._conv = kit.separable(
            filters=channels, kernel_size=kernel, padding="same", use_bias=False,
            depthwise_initializer=separable_initializer(),
            pointwise_initializer=separable_initializer(),
            depthwise_regularizer=regularizer, pointwise_regularizer=regularizer,
            name="separable_conv")
        self._bn = batch_norm("bn", norm_momentum, norm_epsilon, use_sync_bn, kit,
                              quantize_output=True)

    def call(self, inputs: Sequence[tf.Tensor], training=None):
        if len(inputs) != len(self._resamplers):
            raise ValueError(f"block expects {len(self._resamplers)} inputs, got {len(inputs)}")
        features = [r(x, training=training) for r, x in zip(self._resamplers, inputs)]
        if self._config_dict["merge"] == "se":
            merged = self._se(features)
        else:
            merged = features[0]
            for i, f in enumerate(features[1:]):  # pairwise adds: TFLite has no good AddN
                merged = merged + f
                if i < len(self._q_partial):
                    merged = self._q_partial[i](merged)
        merged = self._q_merged(tf.nn.relu6(merged))
        return self._bn(self._conv(merged), training=training)


def nasfpn_resampler(input_level: int, level: int, name: str) -> tf_keras.layers.Layer | None:
    """NAS-FPN's parameter-free resampling of a C-wide node: max pool with kernel = stride
    to go down, nearest-neighbour upsampling to go up (None at the same level)."""
    step = level - input_level
    if step > 0:
        return tf_keras.layers.MaxPool2D(2 ** step, strides=2 ** step, padding="same",
                                         name=name)
    if step < 0:
        return tf_keras.layers.UpSampling2D(2 ** -step, interpolation="nearest", name=name)
    return None


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class NASFPNBlock(ConfigurableLayer):
    """One NAS-FPN(-Lite) block: resample 2 inputs, merge, add recycled nodes, ReLU, 3x3
    conv (separable for Lite) + BN, as Model Garden's NASFPN decoder builds it.

    Inputs are C wide already (the decoder projects the backbone features first), so
    resampling has no conv. "attention" is NAS-FPN's global attention: the coarser input
    plus the finer one gated by the sigmoid of the coarser one's spatial max. The inputs
    after the first two are `recycled` same-level nodes, added unresampled.
    """

    def __init__(self, input_levels: Sequence[int], level: int, channels: int,
                 merge: str = "sum", separable: bool = True, norm_momentum: float = 0.99,
                 norm_epsilon: float = 0.01, use_sync_bn: bool = False,
                 kernel_regularizer: Any = None, quantized: bool = False, **kwargs):
        super().__init__(**kwargs)
        self._record(input_levels=[int(v) for v in input_levels], level=level,
                     channels=channels, merge=merge, separable=separable,
                     norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                     use_sync_bn=use_sync_bn, kernel_regularizer=kernel_regularizer,
                     quantized=quantized)
        if merge not in ("sum", "attention"):
            raise ValueError(f"merge must be 'sum' or 'attention', got {merge!r}")
        levels = self._config_dict["input_levels"]
        if len(levels) < 2:
            raise ValueError(f"a NAS-FPN block merges 2 inputs (+ recycled), got {levels}")
        regularizer = self._config_dict["kernel_regularizer"]
        kit = kit_for(quantized)
        self._resamplers = [nasfpn_resampler(lvl, level, f"resample_{i}")
                            for i, lvl in enumerate(levels[:2])]
        self._q_gate = kit.quantize("gate_quant")
        self._q_gated = kit.quantize("gated_quant")
        self._q_partial = [kit.quantize(f"sum_{i}_quant") for i in range(len(levels) - 2)]
        self._q_merged = kit.quantize("merged_quant")
        conv_args = dict(filters=channels, kernel_size=3, padding="same", use_bias=False,
                         name="conv")
        if separable:
            self._conv = kit.separable(
                depthwise_initializer=separable_initializer(),
                pointwise_initializer=separable_initializer(),
                depthwise_regularizer=regularizer, pointwise_regularizer=regularizer,
                **conv_args)
        else:
            self._conv = kit.conv2d(kernel_initializer="he_normal",
                                    kernel_regularizer=regularizer, **conv_args)
        self._bn = batch_norm("bn", norm_momentum, norm_epsilon, use_sync_bn, kit,
                              quantize_output=True)

    def call(self, inputs: Sequence[tf.Tensor], training=None):
        levels = self._config_dict["input_levels"]
        if len(inputs) != len(levels):
            raise ValueError(f"block expects {len(levels)} inputs, got {len(inputs)}")
        a, b = [x if r is None else r(x) for r, x in zip(self._resamplers, inputs[:2])]
        if self._config_dict["merge"] == "attention":
            if levels[1] > levels[0]:  # the coarser node gates the finer one
                a, b = b, a
            gate = self._q_gate(tf.math.sigmoid(tf.reduce_max(a, axis=[1, 2], keepdims=True)))
            b = self._q_gated(b * gate)
        merged = a
        for i, extra in enumerate([b] + list(inputs[2:])):
            merged = merged + extra
            if i < len(self._q_partial):
                merged = self._q_partial[i](merged)
        merged = self._q_merged(tf.nn.relu(merged))
        return self._bn(self._conv(merged), training=training)
