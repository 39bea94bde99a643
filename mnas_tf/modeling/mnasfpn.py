"""The MnasFPN head as a Model Garden decoder: C6, then `repeats` searched cells.

One decoder for every cell family of the spec (MnasFPN, No-SDO, No-Expand, Conn-Search,
NAS-FPN(-Lite)); the family only changes the block layer and the cell-wide residuals.

Input: a dict of backbone features keyed by level ('3', '4', '5', ...). Output: a dict
'3'..'6' of C-channel features, the contract Model Garden's RetinaNet head expects.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import tensorflow as tf
import tf_keras
from official.vision.modeling.decoders import factory as decoder_factory

from mnas_tf.arch import MnasFPNSpec, load_architecture
from mnas_tf.modeling.kit import kit_for
from mnas_tf.modeling.layers import (ConfigDictModel, ConfigurableLayer, MnasFPNBlock,
                                     NASFPNBlock, SDOResample, nasfpn_resampler)


def as_spec(architecture: Any) -> MnasFPNSpec:
    """Accepts a spec, its dict form, inline JSON, a path or a shipped name."""
    if isinstance(architecture, Mapping):
        return MnasFPNSpec.from_dict(architecture)
    return load_architecture(architecture)


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class MnasFPNCell(ConfigurableLayer):
    """One cell: the used blocks in order, then the cell-wide residuals.

    Blocks no output depends on are never created (learnable block count). After all
    blocks are built, each cell input is added to the output at its level when their
    shapes, channels included, match; blocks read their inputs *before* that add.
    """

    def __init__(self, architecture: Any, norm_momentum: float = 0.99,
                 norm_epsilon: float = 0.01, use_sync_bn: bool = False,
                 kernel_regularizer: Any = None, quantized: bool = False, **kwargs):
        super().__init__(**kwargs)
        spec = as_spec(architecture)
        self._spec = spec
        self._record(architecture=spec.to_dict(), norm_momentum=norm_momentum,
                     norm_epsilon=norm_epsilon, use_sync_bn=use_sync_bn,
                     kernel_regularizer=kernel_regularizer, quantized=quantized)
        self._used = spec.used_blocks()
        common = dict(norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                      use_sync_bn=use_sync_bn, quantized=quantized,
                      kernel_regularizer=self._config_dict["kernel_regularizer"])
        # string keys: checkpoints and SavedModels cannot track int-keyed dicts
        self._blocks = {f"block_{i}": self._make_block(spec, i, common) for i in self._used}
        kit = kit_for(quantized)
        self._q_residual = {str(level): kit.quantize(f"residual_{level}_quant")
                            for level in spec.levels}

    @staticmethod
    def _make_block(spec: MnasFPNSpec, i: int, common: dict) -> ConfigurableLayer:
        block = spec.blocks[i]
        levels = [spec.node_level(n) for n in spec.block_sources(i)]
        if spec.family == "nasfpn":
            return NASFPNBlock(input_levels=levels, level=block.level, channels=spec.channels,
                               merge=block.merge, separable=spec.separable, name=f"block_{i}",
                               **common)
        return MnasFPNBlock(input_levels=levels, level=block.level, expansion=block.expansion,
                            channels=spec.channels, merge=block.merge, kernel=block.kernel,
                            sdo=spec.sdo, name=f"block_{i}", **common)

    @property
    def spec(self) -> MnasFPNSpec:
        return self._spec

    @property
    def built_blocks(self) -> tuple[int, ...]:
        return self._used

    def block(self, index: int) -> MnasFPNBlock:
        """The layer of block `index` (KeyError if that block is unused, so not built)."""
        return self._blocks[f"block_{index}"]

    def call(self, inputs: Sequence[tf.Tensor], training=None):
        spec = self._spec
        if len(inputs) != spec.num_levels:
            raise ValueError(f"cell expects {spec.num_levels} features (levels "
                             f"{spec.min_level}..{spec.max_level}), got {len(inputs)}")
        nodes: dict[int, tf.Tensor] = dict(enumerate(inputs))
        for i in self._used:
            nodes[spec.num_levels + i] = self.block(i)(
                [nodes[n] for n in spec.block_sources(i)], training=training)
        outputs = []
        for level, node in sorted(spec.output_nodes().items()):
            out = nodes[node]
            residual = inputs[level - spec.min_level]
            if spec.cell_residuals and \
                    residual.shape[1:].as_list() == out.shape[1:].as_list():
                out = self._q_residual[str(level)](out + residual)
            outputs.append(out)
        return outputs


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class MnasFPN(ConfigDictModel, tf_keras.Model):
    """MnasFPN decoder: extra coarse levels by pool + 1x1 + BN, then the cells.

    Levels the backbone lacks (C6 for MobileNetV2) are made from the level below by a 3x3
    stride-2 max pool and a 1x1 conv + BN to C with no weight decay, as in the reference
    (conv first for `sdo: false`). A NAS-FPN family head instead projects every backbone
    level whose width is not C by a 1x1 conv + BN and makes the extra levels by a 2x2
    stride-2 max pool of the level below, as Model Garden's NASFPN does.
    """

    def __init__(self, input_specs: Mapping[str, Any], architecture: Any = "mnasfpn",
                 use_sync_bn: bool = False, norm_momentum: float = 0.99,
                 norm_epsilon: float = 0.01, kernel_regularizer: Any = None,
                 quantized: bool = False, **kwargs):
        spec = as_spec(architecture)
        kernel_regularizer = tf_keras.regularizers.get(kernel_regularizer)
        input_specs = {str(k): tf.TensorShape(v) for k, v in input_specs.items()}
        self._config_dict = dict(
            input_specs={k: v.as_list() for k, v in input_specs.items()},
            architecture=spec.to_dict(), use_sync_bn=use_sync_bn,
            norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
            kernel_regularizer=(tf_keras.regularizers.serialize(kernel_regularizer)
                                if kernel_regularizer is not None else None),
            quantized=quantized)
        available = sorted(int(k) for k in input_specs if k.isdigit())
        if spec.min_level not in available:
            raise ValueError(f"MnasFPN needs backbone level {spec.min_level}; the backbone "
                             f"provides levels {available}")
        top = max(l for l in available if l <= spec.max_level)
        missing = [l for l in range(spec.min_level, top) if l not in available]
        if missing:
            raise ValueError(f"MnasFPN needs backbone levels {spec.min_level}..{top}; "
                             f"missing {missing}")
        bn_args = dict(norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                       use_sync_bn=use_sync_bn, quantized=quantized)
        inputs = {k: tf_keras.Input(shape=v[1:], name=f"level_{k}")
                  for k, v in input_specs.items() if int(k) in range(spec.min_level, top + 1)}
        feats = [inputs[str(l)] for l in range(spec.min_level, top + 1)]
        if spec.family == "nasfpn":
            feats = [f if f.shape[-1] == spec.channels else
                     SDOResample(l, l, spec.channels, name=f"input_level_{l}", **bn_args)(f)
                     for l, f in zip(range(spec.min_level, top + 1), feats)]
        for level in range(top + 1, spec.max_level + 1):
            if spec.family == "nasfpn":
                feats.append(nasfpn_resampler(level - 1, level, f"extra_level_{level}")(feats[-1]))
            else:
                feats.append(SDOResample(level - 1, level, spec.channels, sdo=spec.sdo,
                                         name=f"extra_level_{level}", **bn_args)(feats[-1]))
        for r in range(spec.repeats):
            feats = MnasFPNCell(spec, kernel_regularizer=kernel_regularizer, name=f"cell_{r}",
                                **bn_args)(feats)
        outputs = {str(level): f for level, f in zip(spec.levels, feats)}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self._spec = spec
        self._output_specs = {k: v.get_shape() for k, v in outputs.items()}

    @property
    def spec(self) -> MnasFPNSpec:
        return self._spec

    @property
    def output_specs(self) -> Mapping[str, tf.TensorShape]:
        return self._output_specs



def build_mnasfpn_decoder(input_specs, model_config, l2_regularizer=None, **kwargs) -> MnasFPN:
    """Model Garden decoder factory entry for `decoder.type: mnasfpn`.

    The head has its own weight decay (1e-4 in the reference, vs 4e-5 for the backbone):
    `decoder.mnasfpn.l2_weight_decay` overrides the task-wide regularizer when set.
    """
    decoder_cfg = model_config.decoder.get()
    if model_config.decoder.type != "mnasfpn":
        raise ValueError(f"inconsistent decoder type {model_config.decoder.type}")
    spec = as_spec(decoder_cfg.architecture)
    if (spec.min_level, spec.max_level) != (model_config.min_level, model_config.max_level):
        raise ValueError(
            f"architecture {spec.name or ''} covers levels {spec.min_level}..{spec.max_level} "
            f"but the model is configured for {model_config.min_level}..{model_config.max_level};"
            f" set model.min_level/max_level to match")
    if decoder_cfg.l2_weight_decay is not None:
        l2_regularizer = (tf_keras.regularizers.l2(decoder_cfg.l2_weight_decay / 2.0)
                          if decoder_cfg.l2_weight_decay > 0 else None)
    norm = model_config.norm_activation
    return MnasFPN(input_specs=input_specs, architecture=spec, use_sync_bn=norm.use_sync_bn,
                   norm_momentum=norm.norm_momentum, norm_epsilon=norm.norm_epsilon,
                   kernel_regularizer=l2_regularizer)


decoder_factory.register_decoder_builder("mnasfpn")(build_mnasfpn_decoder)
