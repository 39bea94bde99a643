"""TFLite conversion of detectors, verified with LiteRT before it is called done.

The raw-output detector (no anchor decoding, no NMS: the paper's timing convention) is
converted from one concrete function of a functional model whose variables are held by a
bare tf.Module: no Keras SavedModel round trip (Model Garden's RetinaNet path took ~257 s).
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import tensorflow as tf
import tf_keras


class ExportError(RuntimeError):
    """A model that did not convert or whose TFLite outputs differ from Keras."""


def convert_float(model: tf_keras.Model) -> bytes:
    """Float32 TFLite flatbuffer of a functional model with a fixed input shape."""
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
    try:
        return converter.convert()
    except Exception as e:  # the converter raises ConverterError and plain exceptions
        raise ExportError(f"TFLite conversion failed: {str(e).strip().splitlines()[-1]}") from e


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
