"""TFLite conversion of Keras models, verified with LiteRT before it is called done.

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

from export.errors import ExportError


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
