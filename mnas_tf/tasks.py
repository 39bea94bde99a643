"""The Model Garden tasks for our detectors: RetinaNetTask and MaskRCNNTask (Faster
R-CNN) with our model factories."""

from __future__ import annotations

import os

import tensorflow as tf
import tf_keras
from official.core import task_factory
from official.vision.tasks import maskrcnn, retinanet

from mnas_tf.configs import fasterrcnn as fasterrcnn_configs
from mnas_tf.configs import retinanet as configs
from mnas_tf.modeling.factory import build_detector


def checkpoint_path(location: str) -> str:
    """A ckpt-N prefix from a model dir or a prefix; FileNotFoundError names the fix."""
    path = tf.train.latest_checkpoint(location) if os.path.isdir(location) else location
    if not path or not tf.io.gfile.exists(path + ".index"):
        raise FileNotFoundError(f"no checkpoint found at {location}; pass a --model-dir of "
                                f"`python -m mnas_tf.train` or a ckpt-N prefix")
    return path


class CheckpointError(ValueError):
    """A checkpoint whose variables do not fit the model (another architecture)."""


def read_checkpoint(model: tf_keras.Model, location: str) -> str:
    """Restores `model` from a model dir or ckpt-N prefix; one-line errors when there is
    none or when it holds another architecture. Returns the prefix read."""
    path = checkpoint_path(location)
    try:
        tf.train.Checkpoint(model=model).read(path).expect_partial() \
            .assert_existing_objects_matched().assert_nontrivial_match()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
        raise CheckpointError(
            f"checkpoint {path} does not fit this model (a different architecture or "
            f"experiment?): {first[:160]}; pass the checkpoint of this experiment's "
            f"--model-dir") from None
    return path


@task_factory.register_task_cls(configs.RetinaNetTask)
class DetectionTask(retinanet.RetinaNetTask):
    """Model Garden's RetinaNet task (data, losses, COCO eval), building our detectors.

    With `task.quantization` set, the model is the quantization-aware version of the float
    detector, whose weights come from `quantization.pretrained_original_checkpoint`.
    """

    def build_inputs(self, params, input_context=None):
        """Model Garden's inputs; MSNAS detectors label against their group anchors."""
        model = self.task_config.model
        if model.backbone.type != "msnas":
            return super().build_inputs(params, input_context)
        from mnas_tf.arch.msnas import load_msnas
        from mnas_tf.modeling import msnas
        anchors = msnas.GroupAnchorGenerator.from_config(
            load_msnas(model.backbone.msnas.architecture).feature_strides, model)
        parser = msnas.GroupAnchorParser(anchors, **msnas.parser_kwargs(self.task_config,
                                                                        params))
        return msnas.build_detection_inputs(self.task_config, params, parser, input_context)

    def build_model(self) -> tf_keras.Model:
        input_specs = tf_keras.layers.InputSpec(shape=[None] + self.task_config.model.input_size)
        l2 = self.task_config.losses.l2_weight_decay
        regularizer = tf_keras.regularizers.l2(l2 / 2.0) if l2 else None
        model = build_detector(input_specs, self.task_config.model, regularizer)
        quantization = self.task_config.quantization
        if quantization is not None:
            from mnas_tf.modeling.quantize import quantize_detector
            if quantization.pretrained_original_checkpoint:
                read_checkpoint(model, quantization.pretrained_original_checkpoint)
            model = quantize_detector(model)
        if self.task_config.freeze_backbone:
            model.backbone.trainable = False
        return model


@task_factory.register_task_cls(fasterrcnn_configs.FasterRCNNTask)
class FasterRCNNTask(maskrcnn.MaskRCNNTask):
    """Model Garden's Mask R-CNN task (losses, COCO eval) for our Faster R-CNN configs.

    MSNAS backbones get the group layout: the model from `build_fasterrcnn` and a parser
    labelling the group anchors. The model's input is the padded image size (the parser
    pads `input_size` up to a multiple of 2^max_level).
    """

    def _input_specs(self) -> tf_keras.layers.InputSpec:
        from official.vision.ops import preprocess_ops
        model = self.task_config.model
        padded = preprocess_ops.compute_padded_size(model.input_size[:2], 2 ** model.max_level)
        return tf_keras.layers.InputSpec(shape=[None, *map(int, padded), 3])

    def build_inputs(self, params, input_context=None, dataset_fn=None):
        model = self.task_config.model
        if model.backbone.type != "msnas":
            return super().build_inputs(params, input_context, dataset_fn)
        from mnas_tf.arch.msnas import load_msnas
        from mnas_tf.modeling import fasterrcnn, msnas
        anchors = msnas.GroupAnchorGenerator.from_config(
            load_msnas(model.backbone.msnas.architecture).feature_strides, model)
        parser = fasterrcnn.GroupAnchorRCNNParser(
            anchors, **fasterrcnn.parser_kwargs(self.task_config, params))
        return msnas.build_detection_inputs(self.task_config, params, parser, input_context)

    def build_model(self) -> tf_keras.Model:
        from mnas_tf.modeling.fasterrcnn import build_fasterrcnn
        l2 = self.task_config.losses.l2_weight_decay
        regularizer = tf_keras.regularizers.l2(l2 / 2.0) if l2 else None
        specs = self._input_specs()
        model = build_fasterrcnn(specs, self.task_config.model, regularizer)
        if self.task_config.freeze_backbone:
            model.backbone.trainable = False
        # Model Garden's warm-up call: creates every variable before checkpointing
        model(tf_keras.Input(specs.shape[1:]), image_shape=tf_keras.layers.Input([2]),
              training=False)
        return model
