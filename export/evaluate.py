"""COCO metrics of an exported TFLite detector (with TFLite NMS) on an experiment's val split.

Runs what ships: LiteRT executes the `--postprocess nms` model image by image, and Model
Garden's COCO evaluator scores its detections exactly as it scores the Keras model during
training (same parser, same rescaling to original image coordinates), so float32, int8
and QAT exports can be compared with each other and with training-time AP.

    python -m export.evaluate M.tflite --experiment NAME|--config YAML [--max-images N]
"""

from __future__ import annotations

import json
import sys
from typing import Optional

import numpy as np

from mnas_tf import console  # first: quiets TensorFlow before it loads
from export.errors import ExportError


def _detections(runner, image: np.ndarray, input_name: str) -> dict:
    outputs = runner(**{input_name: image})
    by_name = {k.lower(): v for k, v in outputs.items()}

    def pick(*keys):
        for key in keys:
            for name, value in by_name.items():
                if key in name:
                    return value
        raise ExportError(f"the TFLite model has no {keys[0]} output (outputs: "
                          f"{sorted(outputs)}); export it with --postprocess nms")
    return {"boxes": pick("detection_boxes", "boxes"), "classes": pick("detection_classes"),
            "scores": pick("detection_scores"), "count": pick("num_detections")}


def evaluate_tflite(flatbuffer: bytes, params, max_images: Optional[int] = None,
                    num_threads: int = 2, progress: bool = True) -> dict:
    """COCO AP/AP50/... of the NMS TFLite model on `params.task.validation_data`."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter
    from official.core import task_factory
    from official.vision.evaluation import coco_evaluator
    from tqdm import tqdm

    from mnas_tf.train import COCO_KEYS

    interpreter = Interpreter(model_content=flatbuffer, num_threads=num_threads)
    signatures = interpreter.get_signature_list()
    if not signatures:
        raise ExportError("the TFLite model has no signature; export it with "
                          "--postprocess nms")
    key = next(iter(signatures))
    runner = interpreter.get_signature_runner(key)
    input_name = signatures[key]["inputs"][0]
    height, width = params.task.model.input_size[:2]
    post = params.task.model.detection_generator.tflite_post_processing
    box_scale = np.array([height, width, height, width], np.float32) \
        if post.normalize_anchor_coordinates else np.ones(4, np.float32)

    data = params.task.validation_data.replace(global_batch_size=1)
    task = task_factory.get_task(params.task)
    dataset = task.build_inputs(data)
    if max_images:
        dataset = dataset.take(max_images)
    evaluator = coco_evaluator.COCOEvaluator(
        annotation_file=params.task.annotation_file, include_mask=False,
        per_category_metrics=False)
    detected = 0
    for images, labels in tqdm(dataset, desc="evaluating TFLite", unit="image",
                               disable=not progress, total=max_images):
        det = _detections(runner, images.numpy().astype(np.float32), input_name)
        count = int(np.asarray(det["count"]).reshape(-1)[0])
        detected += count
        # Every image keeps the model's fixed number of rows, as the Keras detection
        # generator's output does: Model Garden's COCO conversion takes the first image's
        # width for all and reads every row. Rows past `count` become score-0 detections
        # of class 0, which is no category, so they count for nothing.
        valid = np.arange(np.asarray(det["scores"]).shape[1]) < count
        boxes = np.asarray(det["boxes"], np.float32) * box_scale * valid[None, :, None]
        predictions = {
            "source_id": labels["groundtruths"]["source_id"],
            "image_info": labels["image_info"],
            "detection_boxes": tf.constant(boxes),
            "detection_scores": tf.constant(np.asarray(det["scores"], np.float32) * valid),
            "detection_classes": tf.constant(
                (np.asarray(det["classes"]) * valid).astype(np.int32)),
            "num_detections": tf.constant([count]),
        }
        evaluator.update_state(labels["groundtruths"], predictions)
    if not detected:  # pycocotools reports -1 ("no data") for an empty result
        return {k: 0.0 for k in COCO_KEYS}
    results = evaluator.result()
    return {k: float(results[k]) for k in COCO_KEYS if k in results}


def main(argv=None) -> int:
    """`python -m export.evaluate`: COCO metrics of a TFLite detector on the val split."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m export.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a .tflite exported with --postprocess nms")
    parser.add_argument("--experiment")
    parser.add_argument("--config")
    parser.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"))
    parser.add_argument("--max-images", type=int)
    parser.add_argument("--params-override", action="append", default=[])
    console.add_flag(parser)
    args = parser.parse_args(console.cli(argv))
    from mnas_tf.experiment import ConfigError
    try:
        from export import detector
        from mnas_tf.train import parse_override
        with open(args.model, "rb") as f:
            flatbuffer = f.read()
        params = detector.load_params(
            args.experiment or args.config, args.input_size,
            [parse_override(o) for o in args.params_override], need_data=True)
        with console.quiet_stdout():  # pycocotools prints its progress and tables
            metrics = evaluate_tflite(flatbuffer, params, args.max_images)
    except (ExportError, ConfigError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
