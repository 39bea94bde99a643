"""The Model Garden task for our detectors: RetinaNetTask with our model factory."""

from __future__ import annotations

import tf_keras
from official.core import task_factory
from official.vision.tasks import retinanet

from mnas_tf.configs import retinanet as configs
from mnas_tf.modeling.factory import build_detector


@task_factory.register_task_cls(configs.RetinaNetTask)
class DetectionTask(retinanet.RetinaNetTask):
    """Model Garden's RetinaNet task (data, losses, COCO eval), building our detectors."""

    def build_model(self) -> tf_keras.Model:
        input_specs = tf_keras.layers.InputSpec(shape=[None] + self.task_config.model.input_size)
        l2 = self.task_config.losses.l2_weight_decay
        regularizer = tf_keras.regularizers.l2(l2 / 2.0) if l2 else None
        model = build_detector(input_specs, self.task_config.model, regularizer)
        if self.task_config.freeze_backbone:
            model.backbone.trainable = False
        return model
