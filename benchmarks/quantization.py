"""Accuracy and speed of int8 exports against float, on the default synthetic dataset.

Takes a float checkpoint of `mnasfpn_synthetic` (train one with `python -m mnas_tf.train
--experiment mnasfpn_synthetic --model-dir DIR`, or give `--train-steps N` to train it
here), or of another family's detector on the same data (`--family ssdlite_mobilenetv2`,
`fpnlite_mobilenetv2`, `nasfpnlite_mobilenetv2`: that experiment's model with the synthetic
dataset's 7 class slots and BN momentum), exports it three ways through
`python -m export.tflite` (float32; int8 post-training quantization; QAT: quantization-
aware fine-tuning, then int8), and for each prints the val-split COCO AP/AP50 of the
TFLite model with TFLite NMS inside (scored by `export.evaluate`), the model size and
host latency (raw outputs, 1 thread).

    python benchmarks/quantization.py --checkpoint DIR [--qat-steps 100] [--out-dir D]
    python benchmarks/quantization.py --family ssdlite_mobilenetv2 --train-steps 300
    python benchmarks/quantization.py --family fpnlite_mobilenetv2 --init-backbone search
"""

from __future__ import annotations

import argparse
import json
import os
import time

from mnas_tf import console  # noqa: E402  (first: quiets TensorFlow before it loads)

EVAL_POSTPROCESS = ("task.model.detection_generator.tflite_post_processing.nms_score_threshold"
                    "=0.01,task.model.detection_generator.tflite_post_processing."
                    "max_detections=100")


def family_override(family: str) -> dict:
    """`family`'s detector on the synthetic data: its model config (and SSD-style unpadded
    input) on top of mnasfpn_synthetic, with 7 class slots and BN momentum 0.9."""
    from mnas_tf.experiment import load_experiment
    if family == "mnasfpn":
        return {}
    params = load_experiment(family)
    model = params.task.model.as_dict()
    model.update(num_classes=7, input_size=[320, 320, 3])
    model["norm_activation"]["norm_momentum"] = 0.9
    model["head"]["norm_momentum"] = 0.9 if model["head"].get("norm_momentum") else None
    pad = params.task.train_data.parser.pad
    return {"task": {"model": model, "train_data": {"parser": {"pad": pad}},
                     "validation_data": {"parser": {"pad": pad}}}}


def search_warm_start() -> str:
    """The default search's cached warm-start backbone (MobileNetV2 trained on
    search-train, which the val split is not part of)."""
    from mnas_tf.warm_start import cached_checkpoint
    from search.config import load_config
    prefix = cached_checkpoint(load_config().proxy)
    if prefix is None:
        raise SystemExit("error: no cached warm start; run python -m search.controller once "
                         "(it trains and caches it), or give --init-backbone PREFIX")
    return prefix


def matched_backbone(family: str, prefix: str, out_dir: str) -> str:
    """`prefix`'s backbone weights as a checkpoint of `family`'s own backbone: what the two
    share is restored, the rest (SSDLite's extra blocks) keeps its initialisation, so
    Model Garden's strict `init_checkpoint` restore matches every object."""
    import numpy as np
    import tensorflow as tf
    from official.core import task_factory

    from mnas_tf import train
    params = train.load_params("mnasfpn_synthetic", [], [json.dumps(family_override(family))],
                               progress=False)
    model = task_factory.get_task(params.task).build_model()
    before = [v.numpy() for v in model.backbone.variables]
    tf.train.Checkpoint(backbone=model.backbone).read(prefix).expect_partial()
    changed = sum(not np.array_equal(b, v.numpy())
                  for b, v in zip(before, model.backbone.variables))
    print(f"[init] {changed} of {len(before)} backbone variables from {prefix}", flush=True)
    return tf.train.Checkpoint(backbone=model.backbone).write(
        os.path.join(out_dir, "init_backbone", "ckpt"))


def train_float(family: str, steps: int, model_dir: str,
                init_backbone: str | None = None) -> str:
    """A float checkpoint of `family` on the synthetic data after `steps` steps, its
    backbone initialised from `init_backbone` (a `Checkpoint(backbone=...)` prefix)."""
    from mnas_tf import train
    layers = [json.dumps(family_override(family))]
    if init_backbone:
        layers.append(json.dumps({"task": {"init_checkpoint": init_backbone,
                                           "init_checkpoint_modules": "backbone"}}))
    params = train.load_params("mnasfpn_synthetic", [], layers)
    loop = next(n for n in (20, 10, 5, 1) if steps % n == 0)
    params = params.replace(trainer={
        "train_steps": steps, "steps_per_loop": loop, "summary_interval": loop,
        "checkpoint_interval": loop, "validation_interval": steps,
        "optimizer_config": {"learning_rate": {"cosine": {"decay_steps": steps}}}})
    train.run(params, model_dir, mode="train")
    return model_dir


def export(out: str, quant: str, checkpoint: str, postprocess: str, qat_args=(),
           family: str = "mnasfpn") -> dict:
    import contextlib
    import io

    from export import tflite
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = tflite.main(["--experiment", "mnasfpn_synthetic", "--checkpoint", checkpoint,
                            "--quant", quant, "--postprocess", postprocess, "--out", out,
                            "--params-override", EVAL_POSTPROCESS,
                            "--params-override", json.dumps(family_override(family)),
                            *qat_args])
    if code:
        raise SystemExit(f"export {quant}/{postprocess} failed")
    return json.loads(buffer.getvalue().strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="float model dir (default: train one)")
    parser.add_argument("--family", default="mnasfpn",
                        help="mnasfpn, ssdlite_mobilenetv2, fpnlite_mobilenetv2 or "
                             "nasfpnlite_mobilenetv2")
    parser.add_argument("--train-steps", type=int, default=300,
                        help="float steps when --checkpoint is not given")
    parser.add_argument("--init-backbone", metavar="PREFIX|search",
                        help="start the float training's backbone from a checkpoint prefix; "
                             "'search': the default search's cached warm start")
    parser.add_argument("--qat-steps", type=int, default=100)
    parser.add_argument("--qat-learning-rate", type=float, default=1e-4)
    parser.add_argument("--out-dir", default="runs/quantization")
    parser.add_argument("--calibration-images", type=int, default=100)
    parser.add_argument("--quants", nargs="+", default=["float32", "int8", "qat"],
                        choices=("float32", "int8", "qat"), help="exports to compare")
    parser.add_argument("--max-images", type=int, help="score on the first N val images")
    parser.add_argument("--no-latency", action="store_true",
                        help="skip the raw-output exports and their host timing")
    args = parser.parse_args()
    from export.detector import TFLITE_NMS, load_params
    from export.evaluate import evaluate_tflite
    from latency import get_backend
    from mnas_tf.train import parse_override

    os.makedirs(args.out_dir, exist_ok=True)
    init = search_warm_start() if args.init_backbone == "search" else args.init_backbone
    if init and not args.checkpoint:
        init = matched_backbone(args.family, init, args.out_dir)
    checkpoint = args.checkpoint or train_float(args.family, args.train_steps,
                                                os.path.join(args.out_dir, "float"), init)
    params = load_params("mnasfpn_synthetic", None,
                         [parse_override(EVAL_POSTPROCESS), family_override(args.family),
                          TFLITE_NMS], need_data=True)
    backend = get_backend("host")
    rows = []
    for quant in args.quants:
        start = time.perf_counter()
        qat_args = (["--qat-steps", str(args.qat_steps), "--qat-learning-rate",
                     str(args.qat_learning_rate),
                     "--qat-dir", os.path.join(args.out_dir, "qat_finetune")]
                    if quant == "qat" else
                    ["--calibration-images", str(args.calibration_images)]
                    if quant == "int8" else [])
        nms_path = os.path.join(args.out_dir, f"{quant}_nms.tflite")
        raw_path = os.path.join(args.out_dir, f"{quant}_raw.tflite")
        info = export(nms_path, quant, checkpoint, "nms", qat_args, args.family)
        median_ms = float("nan")
        if not args.no_latency:
            info = export(raw_path, quant, checkpoint, "none", qat_args, args.family)
            median_ms = backend.measure(raw_path, threads=1, warmup=10, runs=50).median_ms
        with console.quiet_stdout():
            metrics = evaluate_tflite(open(nms_path, "rb").read(), params, args.max_images,
                                      progress=False)
        rows.append({"quant": quant, "bytes": info["bytes"], "median_ms": median_ms,
                     "seconds": round(time.perf_counter() - start, 1), **metrics})
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["AP50"]
    print(f"\n{'export':<10}{'size MB':>8}{'host ms':>9}{'AP':>8}{'AP50':>8}{'AP50 drop':>11}")
    for r in rows:
        print(f"{r['quant']:<10}{r['bytes'] / 1e6:8.2f}{r['median_ms']:9.1f}{r['AP']:8.3f}"
              f"{r['AP50']:8.3f}{100 * (base - r['AP50']):10.2f}pt")
    print(f"family: {args.family}; device: {backend.fingerprint(1)}")


if __name__ == "__main__":
    main()
