"""The speed probe: one fixed reference model's latency, part of a table's identity.

A CPU name ("AMD EPYC, 2 cores") does not fix speed: clocks, frequency scaling, noisy
neighbours and microcode differ between machines of the same name, and a table copied
from one would be silently wrong on the other (3x has been seen). Every table records
the probe's latency when it is built; opening it on a device that probes differently
(beyond a tolerance) is detected. The model is written byte for byte from the TFLite
schema (no converter, so it is the same model everywhere): a 3x3 conv and a 3x3
depthwise conv on 1x32x32x64, about 1 ms on one desktop core, timed in well under 1 s.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

PROBE_NAME = "probe-v1 (conv3x3 + dw3x3, 1x32x32x64 float32)"
PROBE_WARMUP, PROBE_RUNS = 20, 100
DEFAULT_TOLERANCE = 0.25  # relative probe difference beyond which a table is not reused


def probe_flatbuffer() -> bytes:
    """The reference model (deterministic weights, float32)."""
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils
    rng = np.random.default_rng(0)
    c, hw = 64, 32
    arrays = [None, rng.normal(0, 0.1, (c, 3, 3, c)), rng.normal(0, 0.1, c), None,
              rng.normal(0, 0.1, (1, 3, 3, c)), rng.normal(0, 0.1, c), None]
    shapes = [(1, hw, hw, c), (c, 3, 3, c), (c,), (1, hw, hw, c), (1, 3, 3, c), (c,),
              (1, hw, hw, c)]
    buffers, tensors = [s.BufferT()], []
    for i, (array, shape) in enumerate(zip(arrays, shapes)):
        buffer = s.BufferT()
        if array is not None:
            buffer.data = np.frombuffer(array.astype(np.float32).tobytes(), np.uint8).tolist()
        buffers.append(buffer)
        tensor = s.TensorT()
        tensor.shape, tensor.type, tensor.buffer, tensor.name = list(shape), \
            s.TensorType.FLOAT32, len(buffers) - 1, f"t{i}".encode()
        tensors.append(tensor)
    codes, ops = [], []
    for index, (code, options_type, options, inputs, output) in enumerate((
            (s.BuiltinOperator.CONV_2D, s.BuiltinOptions.Conv2DOptions, s.Conv2DOptionsT(),
             [0, 1, 2], 3),
            (s.BuiltinOperator.DEPTHWISE_CONV_2D, s.BuiltinOptions.DepthwiseConv2DOptions,
             s.DepthwiseConv2DOptionsT(), [3, 4, 5], 6))):
        op_code = s.OperatorCodeT()
        op_code.builtinCode, op_code.deprecatedBuiltinCode, op_code.version = code, code, 1
        codes.append(op_code)
        options.padding, options.strideW, options.strideH = s.Padding.SAME, 1, 1
        if code == s.BuiltinOperator.DEPTHWISE_CONV_2D:
            options.depthMultiplier = 1
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = index, inputs, [output]
        op.builtinOptionsType, op.builtinOptions = options_type, options
        ops.append(op)
    graph = s.SubGraphT()
    graph.tensors, graph.operators, graph.inputs, graph.outputs = tensors, ops, [0], [6]
    graph.name = "main"
    model = s.ModelT()
    model.version, model.description = 3, b"mnas_tf latency speed probe"
    model.operatorCodes, model.subgraphs, model.buffers = codes, [graph], buffers
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def measure_probe(backend, threads: int) -> float:
    """The probe's fastest run (us) on `backend` at `threads` (the minimum is what load
    disturbs least)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.tflite")
        with open(path, "wb") as f:
            f.write(probe_flatbuffer())
        r = backend.measure(path, threads=threads, warmup=PROBE_WARMUP, runs=PROBE_RUNS)
    return (r.min_ms if r.min_ms is not None else r.median_ms) * 1e3


def probe_mismatch(stored_us: float, current_us: float,
                   tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """Whether two probes differ by more than `tolerance` (relative, either way)."""
    ratio = max(stored_us, current_us) / max(min(stored_us, current_us), 1e-9)
    return ratio - 1.0 > tolerance
