"""Single-op TFLite models for latency-table entries, built in batches.

Converting one tiny model per op costs about a second of converter start-up, so ops are
converted together (each with its own inputs) and the flatbuffer is then split into
one model per op (int8 keys: the batch is converted full-integer, as the export's int8
model is). Every split model is read back and must hold exactly the requested op
key; anything else (the converter chose another op, or fused differently) is an error.
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import numpy as np

from latency.errors import LatencyError
from latency.graph import OpKey, read_ops



def _activation(name: str):
    import tensorflow as tf
    return {"NONE": lambda x: x, "RELU": tf.nn.relu, "RELU6": tf.nn.relu6}[name]


def op_function(key: OpKey, rng: np.random.Generator) -> Callable:
    """A TF function of the key's activation inputs that converts to exactly that op."""
    import tensorflow as tf
    act = _activation(key.activation)
    if key.op == "CONV_2D":
        cin, cout = key.inputs[0][-1], key.output[-1]
        weights = tf.constant(rng.normal(0, 0.1, (*key.kernel, cin, cout)), tf.float32)
        bias = tf.constant(rng.normal(0, 0.1, cout), tf.float32)
        return lambda x: act(tf.nn.conv2d(x, weights, key.stride, key.padding) + bias)
    if key.op == "DEPTHWISE_CONV_2D":
        c = key.inputs[0][-1]
        weights = tf.constant(rng.normal(0, 0.1, (*key.kernel, c, 1)), tf.float32)
        bias = tf.constant(rng.normal(0, 0.1, c), tf.float32)
        strides = [1, key.stride, key.stride, 1]
        return lambda x: act(tf.nn.depthwise_conv2d(x, weights, strides, key.padding) + bias)
    if key.op == "ADD":
        return lambda x, y: act(x + y)
    if key.op == "MUL":
        return lambda x, y: act(x * y)
    if key.op == "MAX_POOL_2D":
        return lambda x: tf.nn.max_pool2d(x, key.kernel, key.stride, key.padding)
    if key.op == "RESIZE_NEAREST_NEIGHBOR":
        size = key.output[1:3]
        return lambda x: tf.image.resize(x, size, "nearest")
    if key.op == "MEAN":
        return lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    if key.op == "REDUCE_MAX":  # NAS-FPN's global-attention gate
        return lambda x: tf.reduce_max(x, axis=[1, 2], keepdims=True)
    if key.op == "LOGISTIC":
        return tf.sigmoid
    if key.op == "RESHAPE":
        return lambda x: tf.reshape(x, key.output)
    if key.op == "CONCATENATION":
        return lambda *xs: tf.concat(xs, axis=1)
    if key.op == "DEQUANTIZE":  # an int8 op whose float output the converter dequantizes
        return lambda x: x + x
    raise LatencyError(f"no single-op benchmark for {key.op}; it cannot be put in a "
                       f"latency table yet")


def _batch_flatbuffer(keys: Sequence[OpKey], seed: int) -> bytes:
    import tensorflow as tf
    rng = np.random.default_rng(seed)
    functions = [op_function(k, rng) for k in keys]
    specs = [tf.TensorSpec(s, tf.float32) for k in keys for s in k.inputs]

    def graph(*inputs):
        outputs, i = [], 0
        for key, fn in zip(keys, functions):
            n = len(key.inputs)
            outputs.append(fn(*inputs[i:i + n]))
            i += n
        return outputs
    concrete = tf.function(graph).get_concrete_function(*specs)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    if {k.dtype for k in keys} == {"int8"}:
        # full-integer ops as export.tflite --quant int8 makes them (float IO kept)
        from export.tflite import configure_quantization
        configure_quantization(converter, "int8", lambda: (
            [rng.normal(0, 1, s.shape).astype(np.float32) for s in specs] for _ in range(2)))
    elif {k.dtype for k in keys} != {"float32"}:
        raise LatencyError(f"single-op batches are float32 or int8, got "
                           f"{sorted({k.dtype for k in keys})}")
    try:
        return converter.convert()
    except Exception as e:  # converter errors are plain exceptions
        raise LatencyError(f"single-op models did not convert: "
                           f"{str(e).strip().splitlines()[-1]}") from e


def _single_op_model(model, index: int) -> bytes:
    """The model with only operator `index`, its tensors and its constant buffers."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils
    graph = model.subgraphs[0]
    op = copy.copy(graph.operators[index])
    used = [i for i in op.inputs if i >= 0] + list(op.outputs)
    remap = {old: new for new, old in enumerate(dict.fromkeys(used))}
    buffers = [schema.BufferT()]
    tensors = []
    for old in remap:
        tensor = copy.copy(graph.tensors[old])
        data = model.buffers[tensor.buffer].data if tensor.buffer else None
        if data is not None and len(data):
            buffers.append(model.buffers[tensor.buffer])
            tensor.buffer = len(buffers) - 1
        else:
            buffers.append(schema.BufferT())
            tensor.buffer = len(buffers) - 1
        tensors.append(tensor)
    op.inputs = [remap[i] if i >= 0 else -1 for i in op.inputs]
    op.outputs = [remap[i] for i in op.outputs]
    code = model.operatorCodes[op.opcodeIndex]
    op.opcodeIndex = 0
    sub = schema.SubGraphT()
    sub.tensors, sub.operators = tensors, [op]
    sub.inputs = [remap[i] for i in graph.operators[index].inputs
                  if i >= 0 and not (model.buffers[graph.tensors[i].buffer].data is not None
                                     and len(model.buffers[graph.tensors[i].buffer].data))]
    sub.outputs = list(op.outputs)
    sub.name = "main"
    single = schema.ModelT()
    single.version, single.description = model.version, b"mnas_tf single-op benchmark"
    single.operatorCodes, single.subgraphs, single.buffers = [code], [sub], buffers
    return bytes(flatbuffer_utils.convert_object_to_bytearray(single))


def single_op_models(keys: Sequence[OpKey], seed: int = 0) -> list[bytes]:
    """One verified single-op flatbuffer per key, in the order of `keys`."""
    from ai_edge_litert import schema_py_generated as schema
    if not keys:
        return []
    flatbuffer = _batch_flatbuffer(keys, seed)
    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    found = {}
    for index in range(len(model.subgraphs[0].operators)):
        single = _single_op_model(model, index)
        (key,) = read_ops(single)
        found.setdefault(str(key), single)
    missing = [str(k) for k in keys if str(k) not in found]
    if missing:
        raise LatencyError(f"the converter did not reproduce {len(missing)} op key(s), e.g. "
                           f"{missing[0]}; got {sorted(found)[:3]}")
    return [found[str(k)] for k in keys]
