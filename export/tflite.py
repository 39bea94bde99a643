"""`python -m export.tflite`: an experiment's detector as a verified TFLite file.

The conversion itself lives in `export.converter` (re-exported here) and the error class in
`export.errors`, so running this file as `__main__` never imports a second copy of it.
"""

from __future__ import annotations

import os

from mnas_tf import console  # first: TF_CPP_MIN_LOG_LEVEL before TensorFlow loads
from export.converter import (QUANT_MODES, configure_quantization, convert,  # noqa: F401
                              convert_float, export_verified_float, float_convs, max_abs_diff,
                              op_counts, run_tflite, verify)
from export.errors import ExportError  # noqa: F401
from mnas_tf.data.labels import categories_of, label_map, label_map_path, write_label_map


def _parser():
    import argparse
    parser = argparse.ArgumentParser(prog="python -m export.tflite", description=__doc__)
    parser.add_argument("--experiment", help="registered experiment name")
    parser.add_argument("--config", help="YAML (its `experiment:` key names the base)")
    parser.add_argument("--checkpoint", help="model dir of mnas_tf.train or a ckpt-N prefix")
    parser.add_argument("--random-weights", action="store_true",
                        help="export randomly initialised weights (no --checkpoint), e.g. "
                             "for latency")
    parser.add_argument("--out", required=True, help="where to write the .tflite")
    parser.add_argument("--quant", choices=QUANT_MODES, default="float32")
    parser.add_argument("--postprocess", choices=("none", "nms"), default="none")
    parser.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"))
    parser.add_argument("--calibration-images", type=int, default=100)
    parser.add_argument("--qat-steps", type=int, default=100,
                        help="quantization-aware fine-tuning steps (--quant qat)")
    parser.add_argument("--qat-learning-rate", type=float, default=1e-4)
    parser.add_argument("--qat-dir", help="model dir of the QAT fine-tuning (resumable); "
                        "default: OUT without .tflite, plus _qat")
    parser.add_argument("--params-override", action="append", default=[],
                        help="'a.b=1,c.d=x' or a YAML mapping (repeatable), as in mnas_tf.train")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's and the converter's own log lines")
    from mnas_tf.train import data_flags
    data_flags(parser)  # own COCO data: its num_classes, and its images for calibration
    return parser


def _check_args(args) -> None:
    """What can be refused from the command line alone, before anything is built."""
    from mnas_tf.writable import check_writable_dir, check_writable_file
    if args.experiment and args.config:
        raise ExportError("give --experiment or --config, not both")
    if not args.checkpoint and not args.random_weights:
        raise ExportError("no --checkpoint given; pass the --model-dir of mnas_tf.train, or "
                          "--random-weights to export untrained weights on purpose")
    if args.checkpoint and args.random_weights:
        raise ExportError("give --checkpoint or --random-weights, not both")
    if args.quant == "qat" and args.qat_steps <= 0:
        raise ExportError(f"--qat-steps must be positive, got {args.qat_steps}")
    if args.quant == "int8" and args.calibration_images <= 0:
        raise ExportError(f"--calibration-images must be positive, got "
                          f"{args.calibration_images}")
    if args.input_size and min(args.input_size) <= 0:
        raise ExportError("--input-size needs two positive integers")
    if args.checkpoint:
        from mnas_tf.tasks import checkpoint_path
        try:
            checkpoint_path(args.checkpoint)
        except FileNotFoundError as e:
            raise ExportError(str(e)) from None
    check_writable_file(args.out, "--out")
    if args.quant == "qat":
        check_writable_dir(qat_dir(args), "--qat-dir")


def qat_dir(args) -> str:
    return args.qat_dir or os.path.splitext(args.out)[0] + "_qat"


def main(argv=None) -> int:
    """`python -m export.tflite`: export an experiment's detector to a verified TFLite."""
    import sys

    args = _parser().parse_args(argv)
    console.setup(args.verbose)
    from mnas_tf.arch import ArchitectureError
    from mnas_tf.experiment import ConfigError
    try:
        _check_args(args)
        flatbuffer, info = _export(args)
    except (ExportError, ConfigError, ArchitectureError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with open(args.out, "wb") as f:
        f.write(flatbuffer)
    # The class names travel with the model: line i names class i ("???": background).
    info["label_map"] = os.path.abspath(label_map_path(args.out))
    write_label_map(info["label_map"], info["labels"])
    import json
    print(json.dumps(info))
    return 0


def _export(args):
    import time

    from export import detector
    from mnas_tf.experiment import check_input_size
    from mnas_tf.modeling.factory import build_raw_detector
    from mnas_tf.overrides import parse_override
    start = time.perf_counter()
    nms = args.postprocess == "nms"
    overrides = [parse_override(o) for o in args.params_override]
    from mnas_tf.train import data_from_flags
    params = detector.load_params(args.experiment or args.config, args.input_size,
                                  overrides + ([detector.TFLITE_NMS] if nms else []),
                                  need_data=args.quant in ("int8", "qat"),
                                  data=data_from_flags(args))
    check_input_size(params)
    size = tuple(params.task.model.input_size[:2])
    if args.quant == "qat":
        params, model = detector.quantization_aware_finetune(
            params, args.checkpoint, qat_dir(args), args.qat_steps, args.qat_learning_rate)
    else:
        model = detector.build_model(params, args.checkpoint)
    representative = (detector.representative_images(params, args.calibration_images)
                      if args.quant == "int8" else None)
    raw = None
    if nms:
        flatbuffer = detector.convert_with_nms(params, model, args.quant, representative)
    else:
        raw = build_raw_detector(model, size)
        flatbuffer = convert(raw, args.quant, representative)
    report = verify(flatbuffer, args.quant, raw, nms)
    return flatbuffer, {"path": os.path.abspath(args.out), "bytes": len(flatbuffer),
                        "labels": label_map(categories_of(params.task.annotation_file),
                                            params.task.model.num_classes),
                        "quant": args.quant, "postprocess": args.postprocess,
                        "input_size": list(size),
                        "seconds": round(time.perf_counter() - start, 1),
                        "ops": op_counts(flatbuffer), **report}


if __name__ == "__main__":
    raise SystemExit(main())
