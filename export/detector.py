"""Builds an experiment's detector for export: weights, calibration data, NMS variant.

`--postprocess none` exports raw boxes/class logits (the paper's timing convention) from
our functional raw-output model. `--postprocess nms` goes through Model Garden's serving
module with `nms_version='tflite'`, which the converter turns into the
`TFLite_Detection_PostProcess` custom op (boxes, classes, scores, count: the outputs the
TFLite Task Library's ObjectDetector expects).
"""

from __future__ import annotations

import tempfile
from typing import Callable, Iterable, Optional

import tensorflow as tf

from export.errors import ExportError


def load_params(ref: Optional[str], input_size: Optional[tuple[int, int]] = None,
                overrides=(), need_data: bool = False, data: Optional[dict] = None):
    """The experiment config at the export resolution, on your own COCO data if the YAML's
    `data:` section or `data` (the --train-/--val- flags) names it; synthetic data paths
    are resolved (and the dataset generated) only when calibration needs training images."""
    from mnas_tf.data_paths import resolve_data_paths
    from mnas_tf.experiment import load_experiment
    layers = list(overrides)
    if input_size:
        layers.append({"task": {"model": {"input_size": [*input_size, 3]}}})
    params = load_experiment(ref, layers, data=data)
    return resolve_data_paths(params, progress=False) if need_data else params


def build_model(params, checkpoint: Optional[str] = None):
    """The detector of `params`, with weights from a checkpoint dir/prefix if given."""
    from official.core import task_factory

    from mnas_tf.tasks import CheckpointError, read_checkpoint
    model = task_factory.get_task(params.task).build_model()
    if checkpoint:
        try:
            read_checkpoint(model, checkpoint)
        except (FileNotFoundError, CheckpointError) as e:
            raise ExportError(str(e)) from None
    return model


def representative_images(params, count: int = 100) -> Callable[[], Iterable[list]]:
    """Calibration images from the training data without augmentation, preprocessed the
    way the model sees them (normalised, resized, padded), one at a time."""
    from official.core import task_factory
    data = params.task.train_data.replace(
        is_training=False, global_batch_size=1, dtype="float32",
        parser={"aug_rand_hflip": False, "aug_scale_min": 1.0, "aug_scale_max": 1.0})
    task = task_factory.get_task(params.task)

    def images():
        for image, _ in task.build_inputs(data).take(count):
            yield [tf.cast(image, tf.float32)]
    return images


TFLITE_NMS = {"task": {"model": {"detection_generator": {"nms_version": "tflite"}}}}


def convert_with_nms(params, model, quant: str,
                     representative: Optional[Callable] = None) -> bytes:
    """Model Garden's TFLite serving path (TFLite_Detection_PostProcess) on our model.

    `params` and `model` must be built with TFLITE_NMS applied (see `load_params`).
    """
    from official.vision.serving import detection

    from export.converter import configure_quantization
    if params.task.model.detection_generator.nms_version != "tflite":
        raise ExportError("convert_with_nms needs a model built with nms_version 'tflite'")
    size = list(params.task.model.input_size[:2])
    module = detection.DetectionModule(params, batch_size=1, input_image_size=size,
                                       input_type="tflite", model=model)
    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(module, tmp, signatures=module.get_inference_signatures(
            {"tflite": "serving_default"}))
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        configure_quantization(converter, quant, representative, float_fallback=True)
        converter.allow_custom_ops = True
        try:
            return converter.convert()
        except Exception as e:  # converter errors are plain exceptions
            raise ExportError(f"TFLite conversion failed: "
                              f"{str(e).strip().splitlines()[-1]}") from e


def quantization_aware_params(params, float_checkpoint: Optional[str], steps: int,
                              learning_rate: float):
    """`params` turned into a quantization-aware fine-tuning run of `steps` steps at a
    constant learning rate, starting from the float weights in `float_checkpoint`."""
    loop = next(n for n in (20, 10, 5, 1) if steps % n == 0)
    return params.replace(
        task={"quantization": {"pretrained_original_checkpoint": float_checkpoint}},
        trainer={"train_steps": steps, "steps_per_loop": loop, "summary_interval": loop,
                 "checkpoint_interval": loop, "validation_interval": steps,
                 "optimizer_config": {
                     "learning_rate": {"type": "constant",
                                       "constant": {"learning_rate": learning_rate}},
                     "warmup": {"type": None}}})


def quantization_aware_finetune(params, float_checkpoint: Optional[str], model_dir: str,
                                steps: int, learning_rate: float):
    """Fine-tunes the quantization-aware detector with Model Garden's trainer in
    `model_dir` (resumable: a finished run is not repeated) and returns it, trained."""
    from mnas_tf import train
    if steps <= 0:
        raise ExportError(f"--qat-steps must be positive, got {steps}")
    if float_checkpoint is None:
        print("warning: --quant qat without --checkpoint fine-tunes randomly initialised "
              "weights", flush=True)
    qat = quantization_aware_params(params, float_checkpoint, steps, learning_rate)
    train.run(qat, model_dir, mode="train")
    # the trained QAT weights replace the float ones: do not read the float checkpoint again
    qat = qat.replace(task={"quantization": {"pretrained_original_checkpoint": None}})
    return qat, build_model(qat, model_dir)
