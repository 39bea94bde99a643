"""TFLite conversion of detectors, verified with LiteRT before it is called done.

The raw-output detector (no anchor decoding, no NMS: the paper's timing convention) is
converted from one concrete function of a functional model whose variables are held by a
bare tf.Module: no Keras SavedModel round trip (Model Garden's RetinaNet path took ~257 s).
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Mapping, Optional

import numpy as np
import tensorflow as tf
import tf_keras


class ExportError(RuntimeError):
    """A model that did not convert or whose TFLite outputs differ from Keras."""


QUANT_MODES = ("float32", "float16", "int8", "qat")


def convert_float(model: tf_keras.Model) -> bytes:
    """Float32 TFLite flatbuffer of a functional model with a fixed input shape."""
    return convert(model, "float32")


def configure_quantization(converter, quant: str, representative=None,
                           float_fallback: bool = False) -> None:
    """float16 weights, or full-integer int8 calibrated on `representative` (float IO kept).

    `float_fallback` lets ops with no int8 kernel (TFLite_Detection_PostProcess) stay float.
    """
    if quant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quant == "qat":
        # Ranges come from the model's fake-quant ops; calibrating again would override them
        # and the int8 graph would no longer compute what quantization-aware training saw.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quant == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] + (
            [tf.lite.OpsSet.TFLITE_BUILTINS] if float_fallback else [])


def convert(model: tf_keras.Model, quant: str = "float32",
            representative: Optional[Callable[[], Iterable[list]]] = None) -> bytes:
    """TFLite flatbuffer of a functional model with a fixed input shape.

    float16 stores weights in half precision; int8 is full-integer post-training
    quantization calibrated on `representative` (float inputs and outputs are kept).
    """
    if quant not in QUANT_MODES:
        raise ExportError(f"unknown quantization {quant!r}; choose one of {QUANT_MODES}")
    if quant == "int8" and representative is None:
        raise ExportError("int8 needs a representative dataset for calibration")
    spec = tf.TensorSpec(model.input_shape, tf.float32)
    if None in spec.shape:
        raise ExportError(f"the model input shape {model.input_shape} must be fully static "
                          f"(batch included) to convert")
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    # The converter saves its trackable object as a SavedModel first; handing it the Keras
    # model makes it re-trace every layer (~85% of the time). The variables are enough.
    holder = tf.Module()
    holder.weights = list(model.weights)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)
    configure_quantization(converter, quant, representative)
    try:
        return converter.convert()
    except Exception as e:  # the converter raises ConverterError and plain exceptions
        raise ExportError(f"TFLite conversion failed: {str(e).strip().splitlines()[-1]}") from e


def op_counts(flatbuffer: bytes) -> dict[str, int]:
    """How many ops of each type the model holds (what LiteRT will run)."""
    from ai_edge_litert.interpreter import Interpreter
    counts: dict[str, int] = {}
    interpreter = Interpreter(model_content=flatbuffer)
    for op in interpreter._get_ops_details():  # pylint: disable=protected-access
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def float_convs(flatbuffer: bytes) -> int:
    """How many conv/depthwise-conv ops still compute in float (0 for a full-int8 model)."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_content=flatbuffer)
    dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    return sum(1 for op in interpreter._get_ops_details()  # pylint: disable=protected-access
               if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")
               and dtypes[op["inputs"][0]] == np.float32)


def run_tflite(flatbuffer: bytes, image: np.ndarray, num_threads: int = 1
               ) -> list[np.ndarray]:
    """Runs a TFLite model with LiteRT; returns outputs in the model's output order."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_content=flatbuffer, num_threads=num_threads)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def max_abs_diff(flatbuffer: bytes, model: tf_keras.Model, image: np.ndarray) -> float:
    """Largest |TFLite - Keras| over all outputs, matched by shape."""
    expected = model(image, training=False)
    if isinstance(expected, Mapping):
        expected = [expected[k] for k in sorted(expected)]
    elif not isinstance(expected, (list, tuple)):
        expected = [expected]
    expected = [np.asarray(e) for e in expected]
    got = run_tflite(flatbuffer, image)
    worst = 0.0
    for out in got:
        matches = [e for e in expected if e.shape == out.shape]
        if not matches:
            raise ExportError(f"TFLite output of shape {out.shape} matches no Keras output "
                              f"({[e.shape for e in expected]})")
        worst = max(worst, min(float(np.abs(e - out).max()) for e in matches))
    return worst


def export_verified_float(model: tf_keras.Model, path: str, tolerance: float = 1e-4,
                          seed: int = 0) -> dict:
    """Converts, checks TFLite == Keras on a random image, then writes `path`."""
    flatbuffer = convert_float(model)
    image = np.random.default_rng(seed).uniform(-1, 1, model.input_shape).astype(np.float32)
    diff = max_abs_diff(flatbuffer, model, image)
    if diff > tolerance:
        raise ExportError(f"TFLite outputs differ from Keras by {diff:.3g} > {tolerance}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    return {"path": path, "bytes": len(flatbuffer), "max_abs_diff": diff}


def verify(flatbuffer: bytes, quant: str, raw_model: Optional[tf_keras.Model],
           nms: bool, seed: int = 0) -> dict:
    """LiteRT loads and runs the model; float32 raw outputs must equal Keras (<= 1e-4);
    int8 and QAT models must run every conv in int8. For QAT, the raw outputs' difference
    from the quantization-aware Keras model is reported."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    shape = interpreter.get_input_details()[0]["shape"]
    image = np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)
    outputs = run_tflite(flatbuffer, image)
    report = {"outputs": [list(o.shape) for o in outputs]}
    if quant in ("int8", "qat"):
        left = float_convs(flatbuffer)
        if left:
            raise ExportError(f"{left} conv ops stayed float in the {quant} model; a layer "
                              f"without quantization ranges (see the op counts) blocks "
                              f"full-integer conversion")
    if nms:
        if len(outputs) != 4:
            raise ExportError(f"expected 4 NMS outputs (boxes, classes, scores, count), got "
                              f"{len(outputs)}")
    elif raw_model is not None:
        diff = max_abs_diff(flatbuffer, raw_model, image)
        report["max_abs_diff"] = diff
        if quant == "float32" and diff > 1e-4:
            raise ExportError(f"TFLite outputs differ from Keras by {diff:.3g} > 1e-4")
    return report


def main(argv=None) -> int:
    """`python -m export.tflite`: export an experiment's detector to a verified TFLite."""
    import argparse
    import json
    import sys
    import time
    parser = argparse.ArgumentParser(prog="python -m export.tflite", description=main.__doc__)
    parser.add_argument("--experiment", help="registered experiment name")
    parser.add_argument("--config", help="YAML (its `experiment:` key names the base)")
    parser.add_argument("--checkpoint", help="model dir of mnas_tf.train or a ckpt-N prefix")
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
    args = parser.parse_args(argv)
    if args.experiment and args.config:
        parser.error("give --experiment or --config, not both")

    from mnas_tf.arch import ArchitectureError
    from mnas_tf.experiment import ConfigError
    try:
        from export import detector
        from mnas_tf.modeling.factory import build_raw_detector
        from mnas_tf.train import parse_override
        start = time.perf_counter()
        nms = args.postprocess == "nms"
        overrides = [parse_override(o) for o in args.params_override]
        params = detector.load_params(args.experiment or args.config, args.input_size,
                                      overrides + ([detector.TFLITE_NMS] if nms else []),
                                      need_data=args.quant in ("int8", "qat"))
        size = tuple(params.task.model.input_size[:2])
        if args.quant == "qat":
            qat_dir = args.qat_dir or os.path.splitext(args.out)[0] + "_qat"
            params, model = detector.quantization_aware_finetune(
                params, args.checkpoint, qat_dir, args.qat_steps, args.qat_learning_rate)
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
    except (ExportError, ConfigError, ArchitectureError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "wb") as f:
        f.write(flatbuffer)
    print(json.dumps({"path": os.path.abspath(args.out), "bytes": len(flatbuffer),
                      "quant": args.quant, "postprocess": args.postprocess,
                      "input_size": list(size), "seconds": round(time.perf_counter() - start, 1),
                      "ops": op_counts(flatbuffer), **report}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
