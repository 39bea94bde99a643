"""Float TFLite conversion time: our raw-output path vs Model Garden's export path.

Ours: functional raw-output detector -> one concrete function -> TFLiteConverter (what
`export/tflite.py` does). Peer, in the same run: Model Garden's stock route for a
RetinaNet model (DetectionModule with input_type='tflite', tf.saved_model.save, then
export_tflite_lib.convert_tflite_model) on the same backbone and MnasFPN decoder.

    python benchmarks/tflite_conversion.py [--experiment NAME|YAML] [--no-peer]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def time_ours(params, size):
    from official.core import task_factory

    from export.tflite import convert_float
    from mnas_tf.modeling.factory import build_raw_detector
    model = task_factory.get_task(params.task).build_model()
    raw = build_raw_detector(model, size)
    start = time.perf_counter()
    flatbuffer = convert_float(raw)
    return time.perf_counter() - start, len(flatbuffer)


def time_model_garden(params, size):
    import tensorflow as tf
    from official.vision.serving import detection, export_tflite_lib
    params = params.replace(task={"model": {"detection_generator": {"nms_version": "tflite"}}})
    start = time.perf_counter()
    module = detection.DetectionModule(params, batch_size=1, input_image_size=list(size),
                                       input_type="tflite")
    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(module, tmp, signatures=module.get_inference_signatures(
            {"tflite": "serving_default"}))
        flatbuffer = export_tflite_lib.convert_tflite_model(saved_model_dir=tmp)
    return time.perf_counter() - start, len(flatbuffer)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="mnasfpn_mobilenetv2_coco")
    parser.add_argument("--no-peer", action="store_true", help="skip Model Garden's path")
    args = parser.parse_args()
    from mnas_tf.experiment import load_experiment
    params = load_experiment(args.experiment)
    size = tuple(params.task.model.input_size[:2])
    ours, nbytes = time_ours(params, size)
    print(f"ours         {ours:7.1f} s   {nbytes / 1e6:.1f} MB  (raw outputs, {size[0]}x{size[1]})")
    if not args.no_peer:
        peer, peer_bytes = time_model_garden(params, size)
        print(f"model garden {peer:7.1f} s   {peer_bytes / 1e6:.1f} MB  (DetectionModule + "
              f"SavedModel, TFLite NMS, RetinaNetHead)")
        print(f"speed-up     {peer / ours:7.1f} x")


if __name__ == "__main__":
    main()
