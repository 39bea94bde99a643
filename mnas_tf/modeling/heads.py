"""The weight-shared separable box predictor of the MnasFPN reference (SSD style).

Model Garden's RetinaNetHead keeps two towers (one for classes, one for boxes). The
reference MnasFPN predictor shares ONE tower between both outputs, which is what its
0.92B MAdds assumes; this head does that and returns RetinaNetHead's outputs, so
RetinaNetModel, the losses and the detection generator use it unchanged.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import tensorflow as tf
import tf_keras

from mnas_tf.modeling.kit import kit_for
from mnas_tf.modeling.layers import ConfigurableLayer, batch_norm, fresh


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class WeightSharedSeparableHead(ConfigurableLayer):
    """Tower of separable conv + BN + act shared by levels and by both predictors.

    Conv weights are shared across pyramid levels; every level has its own BN (as the
    reference and RetinaNetHead do). Box and class predictors are separable kxk convs with
    bias; the class bias starts at -log((1-p)/p) so initial scores equal the prior p.
    """

    def __init__(self, min_level: int, max_level: int, num_classes: int,
                 num_anchors_per_location: int, num_convs: int = 4, num_filters: int = 64,
                 kernel_size: int = 3, activation: str = "relu6", norm_momentum: float = 0.997,
                 norm_epsilon: float = 0.001, use_sync_bn: bool = False,
                 kernel_initializer: Any = None, kernel_regularizer: Any = None,
                 prior_probability: float = 0.01, quantized: bool = False, **kwargs):
        super().__init__(**kwargs)
        if kernel_initializer is None:
            kernel_initializer = tf_keras.initializers.RandomNormal(stddev=0.01)
        self._record(min_level=min_level, max_level=max_level, num_classes=num_classes,
                     num_anchors_per_location=num_anchors_per_location, num_convs=num_convs,
                     num_filters=num_filters, kernel_size=kernel_size, activation=activation,
                     norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                     use_sync_bn=use_sync_bn, kernel_initializer=kernel_initializer,
                     kernel_regularizer=kernel_regularizer, prior_probability=prior_probability,
                     quantized=quantized)
        cfg = self._config_dict
        kit = kit_for(quantized)

        def separable(filters, name, bias=None):
            return kit.separable(
                filters=filters, kernel_size=kernel_size, padding="same",
                use_bias=bias is not None, quantize_output=bias is not None,
                bias_initializer=bias or "zeros",
                depthwise_initializer=fresh(cfg["kernel_initializer"]),
                pointwise_initializer=fresh(cfg["kernel_initializer"]),
                depthwise_regularizer=cfg["kernel_regularizer"],
                pointwise_regularizer=cfg["kernel_regularizer"], name=name)

        self._levels = [str(l) for l in range(min_level, max_level + 1)]
        self._tower = [separable(num_filters, f"tower_conv_{i}") for i in range(num_convs)]
        self._tower_bn = {
            level: [batch_norm(f"tower_bn_{i}_level_{level}", norm_momentum, norm_epsilon,
                               use_sync_bn, kit) for i in range(num_convs)]
            for level in self._levels}
        self._activation = tf_keras.activations.get(activation)
        # the activation is fused into the conv; its output is the int8 tensor
        self._q_tower = {level: [kit.quantize(f"tower_{i}_level_{level}_quant")
                                 for i in range(num_convs)] for level in self._levels}
        prior_bias = -math.log((1 - prior_probability) / prior_probability)
        self._boxes = separable(4 * num_anchors_per_location, "box_predictor",
                                bias=tf_keras.initializers.Zeros())
        self._classes = separable(num_classes * num_anchors_per_location, "class_predictor",
                                  bias=tf_keras.initializers.Constant(prior_bias))

    def call(self, features: Mapping[str, tf.Tensor], training=None):
        scores, boxes = {}, {}
        for level in self._levels:
            x = features[level]
            for conv, bn, quant in zip(self._tower, self._tower_bn[level],
                                       self._q_tower[level]):
                x = quant(self._activation(bn(conv(x), training=training)))
            scores[level] = self._classes(x)
            boxes[level] = self._boxes(x)
        return scores, boxes, {}
