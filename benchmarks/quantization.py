"""Accuracy and speed of int8 exports against float, on the default synthetic dataset.

Takes a float checkpoint of `mnasfpn_synthetic` (train one with `python -m mnas_tf.train
--experiment mnasfpn_synthetic --model-dir DIR`), exports it three ways through
`python -m export.tflite` (float32; int8 post-training quantization; QAT: quantization-
aware fine-tuning, then int8), and for each prints the val-split COCO AP/AP50 of the
TFLite model with TFLite NMS inside (scored by `export.evaluate`), the model size and
host latency (raw outputs, 1 thread).

    python benchmarks/quantization.py --checkpoint DIR [--qat-steps 100] [--out-dir D]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EVAL_POSTPROCESS = ("task.model.detection_generator.tflite_post_processing.nms_score_threshold"
                    "=0.01,task.model.detection_generator.tflite_post_processing."
                    "max_detections=100")


def export(out: str, quant: str, checkpoint: str, postprocess: str, qat_args=()) -> dict:
    import contextlib
    import io

    from export import tflite
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = tflite.main(["--experiment", "mnasfpn_synthetic", "--checkpoint", checkpoint,
                            "--quant", quant, "--postprocess", postprocess, "--out", out,
                            "--params-override", EVAL_POSTPROCESS, *qat_args])
    if code:
        raise SystemExit(f"export {quant}/{postprocess} failed")
    return json.loads(buffer.getvalue().strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--qat-steps", type=int, default=100)
    parser.add_argument("--qat-learning-rate", type=float, default=1e-4)
    parser.add_argument("--out-dir", default="runs/quantization")
    args = parser.parse_args()
    from export.detector import TFLITE_NMS, load_params
    from export.evaluate import evaluate_tflite
    from latency import get_backend
    from mnas_tf.train import parse_override

    os.makedirs(args.out_dir, exist_ok=True)
    params = load_params("mnasfpn_synthetic", None,
                         [parse_override(EVAL_POSTPROCESS), TFLITE_NMS], need_data=True)
    backend = get_backend("host")
    rows = []
    for quant in ("float32", "int8", "qat"):
        start = time.perf_counter()
        qat_args = (["--qat-steps", str(args.qat_steps), "--qat-learning-rate",
                     str(args.qat_learning_rate),
                     "--qat-dir", os.path.join(args.out_dir, "qat_finetune")]
                    if quant == "qat" else [])
        nms_path = os.path.join(args.out_dir, f"{quant}_nms.tflite")
        raw_path = os.path.join(args.out_dir, f"{quant}_raw.tflite")
        export(nms_path, quant, args.checkpoint, "nms", qat_args)
        info = export(raw_path, quant, args.checkpoint, "none", qat_args)
        metrics = evaluate_tflite(open(nms_path, "rb").read(), params, progress=False)
        latency = backend.measure(raw_path, threads=1, warmup=10, runs=50)
        rows.append({"quant": quant, "bytes": info["bytes"], "median_ms": latency.median_ms,
                     "seconds": round(time.perf_counter() - start, 1), **metrics})
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["AP50"]
    print(f"\n{'export':<10}{'size MB':>8}{'host ms':>9}{'AP':>8}{'AP50':>8}{'AP50 drop':>11}")
    for r in rows:
        print(f"{r['quant']:<10}{r['bytes'] / 1e6:8.2f}{r['median_ms']:9.1f}{r['AP']:8.3f}"
              f"{r['AP50']:8.3f}{100 * (base - r['AP50']):10.2f}pt")
    print(f"device: {backend.fingerprint(1)}")


if __name__ == "__main__":
    main()
