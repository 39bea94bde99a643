"""Model Garden's MobileNet with only its pyramid endpoints built.

Model Garden's MobileNet also builds the classifier's final 1x1 conv (1280 channels for
V2) and returns it under an extra key. The SSD and MnasFPN extractors never build it
(reference §1.1: MobileNetV2 up to `layer_18`), and counting it would add 0.41M params
and 41M MAdds, so this backbone keeps the levels a detector reads and nothing else.
"""

from __future__ import annotations

from typing import Any, Mapping

import tensorflow as tf
import tf_keras
from official.vision.modeling.backbones import factory as backbone_factory
from official.vision.modeling.backbones import mobilenet

from mnas_tf.modeling.layers import ConfigDictModel


def model_garden_mobilenet(model_id: str, filter_size_scale: float, input_specs: Any,
                           norm_momentum: float, norm_epsilon: float, use_sync_bn: bool,
                           kernel_regularizer: Any) -> tuple[tf_keras.Model, dict]:
    """Model Garden's whole MobileNet, and the JSON config of the arguments it was built
    from (what our backbone wrappers record)."""
    if input_specs is None:
        input_specs = tf_keras.layers.InputSpec(shape=[None, None, None, 3])
    elif not isinstance(input_specs, tf_keras.layers.InputSpec):
        input_specs = tf_keras.layers.InputSpec(shape=list(input_specs))
    kernel_regularizer = tf_keras.regularizers.get(kernel_regularizer)
    if model_id not in mobilenet.SUPPORTED_SPECS_MAP:
        raise ValueError(f"unknown MobileNet model_id {model_id!r}; choose one of "
                         f"{sorted(mobilenet.SUPPORTED_SPECS_MAP)}")
    full = mobilenet.MobileNet(
        model_id=model_id, filter_size_scale=filter_size_scale, input_specs=input_specs,
        norm_momentum=norm_momentum, norm_epsilon=norm_epsilon, use_sync_bn=use_sync_bn,
        kernel_regularizer=kernel_regularizer)
    config = dict(
        model_id=model_id, filter_size_scale=filter_size_scale,
        input_specs=list(input_specs.shape), norm_momentum=norm_momentum,
        norm_epsilon=norm_epsilon, use_sync_bn=use_sync_bn,
        kernel_regularizer=(tf_keras.regularizers.serialize(kernel_regularizer)
                            if kernel_regularizer is not None else None))
    return full, config


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class MobileNetPyramid(ConfigDictModel, tf_keras.Model):
    """MobileNet (V2, V3Large, V3Small, ...) exposing levels min_level..5 only."""

    def __init__(self, model_id: str = "MobileNetV2", filter_size_scale: float = 1.0,
                 min_level: int = 3, input_specs: Any = None, norm_momentum: float = 0.99,
                 norm_epsilon: float = 0.01, use_sync_bn: bool = False,
                 kernel_regularizer: Any = None, **kwargs):
        full, config = model_garden_mobilenet(
            model_id=model_id, filter_size_scale=filter_size_scale, input_specs=input_specs,
            norm_momentum=norm_momentum, norm_epsilon=norm_epsilon, use_sync_bn=use_sync_bn,
            kernel_regularizer=kernel_regularizer)
        levels = sorted((k for k in full.output_specs if int(k) >= min_level), key=int)
        if not levels:
            raise ValueError(f"{model_id} has no endpoint at level >= {min_level}")
        outputs = {k: full.output[k] for k in levels}
        super().__init__(inputs=full.inputs, outputs=outputs, **kwargs)
        self._output_specs = {k: full.output_specs[k] for k in levels}
        self._config_dict = dict(config, min_level=min_level)

    @property
    def output_specs(self) -> Mapping[str, tf.TensorShape]:
        return self._output_specs



@backbone_factory.register_backbone_builder("mobilenet_pyramid")
def build_mobilenet_pyramid(input_specs, backbone_config, norm_activation_config,
                            l2_regularizer=None) -> tf_keras.Model:
    """Model Garden backbone factory entry for `backbone.type: mobilenet_pyramid`."""
    if backbone_config.type != "mobilenet_pyramid":
        raise ValueError(f"inconsistent backbone type {backbone_config.type}")
    cfg = backbone_config.get()
    return MobileNetPyramid(
        model_id=cfg.model_id, filter_size_scale=cfg.filter_size_scale,
        min_level=cfg.min_level, input_specs=input_specs,
        norm_momentum=norm_activation_config.norm_momentum,
        norm_epsilon=norm_activation_config.norm_epsilon,
        use_sync_bn=norm_activation_config.use_sync_bn, kernel_regularizer=l2_regularizer)
