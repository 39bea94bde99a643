"""The ops of a converted TFLite model, each reduced to the key its latency depends on.

An op key names what the runtime executes after the converter's fusions (conv + BN +
activation is one CONV_2D with a fused activation): op type, activation input shapes,
output shape, kernel, stride, padding, fused activation and dtype. Weights and biases are
not inputs of the key; their shapes are implied by kernel and channels.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional, Sequence

_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH",
                5: "SIGN_BIT", 6: "SIGMOID"}
_PADDING = {0: "SAME", 1: "VALID"}
_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 9: "int8"}


@dataclasses.dataclass(frozen=True)
class OpKey:
    """One executed op, as a latency table keys it."""

    op: str
    inputs: tuple[tuple[int, ...], ...]
    output: tuple[int, ...]
    kernel: tuple[int, int] = (0, 0)
    stride: int = 0
    padding: str = ""
    activation: str = "NONE"
    dtype: str = "float32"

    def __str__(self) -> str:
        shapes = ",".join("x".join(map(str, s)) for s in self.inputs)
        out = "x".join(map(str, self.output))
        parts = [self.op, f"in={shapes}", f"out={out}"]
        if self.kernel != (0, 0):
            parts.append(f"k={self.kernel[0]}x{self.kernel[1]}")
        if self.stride:
            parts.append(f"s={self.stride}")
        if self.padding:
            parts.append(self.padding)
        parts += [self.activation, self.dtype]
        return "|".join(parts)


def read_ops(flatbuffer: bytes) -> list[OpKey]:
    """Every op of the model's main subgraph, in execution order."""
    from ai_edge_litert import schema_py_generated as schema
    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = model.subgraphs[0]
    ops = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = codes.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        if name == "CUSTOM" and code.customCode:
            name = code.customCode.decode() if isinstance(code.customCode, bytes) \
                else str(code.customCode)
        ops.append(_key(name, op, graph.tensors, model.buffers))
    return ops


def _is_constant(tensor, buffers) -> bool:
    data = buffers[tensor.buffer].data if tensor.buffer < len(buffers) else None
    return data is not None and len(data) > 0


def _key(name: str, op, tensors: Sequence, buffers: Sequence) -> OpKey:
    inputs = [tensors[i] for i in op.inputs if i >= 0]
    activations = [t for t in inputs if not _is_constant(t, buffers)]
    weights = [t for t in inputs if _is_constant(t, buffers)]
    output = tensors[op.outputs[0]]
    options = op.builtinOptions
    kernel = (0, 0)
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and weights:
        shape = list(weights[0].shape)
        kernel = (int(shape[1]), int(shape[2]))
    elif name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        kernel = (int(options.filterHeight), int(options.filterWidth))
    stride = int(getattr(options, "strideH", 0) or 0)
    padding = _PADDING.get(getattr(options, "padding", None), "") if stride else ""
    activation = _ACTIVATIONS.get(getattr(options, "fusedActivationFunction", 0) or 0, "NONE")
    first = activations[0] if activations else output
    return OpKey(op=name, inputs=tuple(tuple(int(d) for d in t.shape) for t in activations),
                 output=tuple(int(d) for d in output.shape), kernel=kernel, stride=stride,
                 padding=padding, activation=activation,
                 dtype=_DTYPES.get(int(first.type), str(first.type)))


def counts(keys: Iterable[OpKey]) -> dict[str, int]:
    """Multiset of keys as {str(key): count}, for comparing two enumerations."""
    result: dict[str, int] = {}
    for key in keys:
        result[str(key)] = result.get(str(key), 0) + 1
    return result


def parse_key(text: str) -> Optional[OpKey]:
    """Inverse of `str(OpKey)`."""
    fields = text.split("|")
    op, rest = fields[0], fields[1:]
    values = {"op": op, "inputs": (), "output": (), "kernel": (0, 0), "stride": 0,
              "padding": "", "activation": "NONE", "dtype": "float32"}
    tail = []
    for field in rest:
        if field.startswith("in="):
            body = field[3:]
            values["inputs"] = tuple(tuple(int(d) for d in s.split("x")) for s in body.split(",")
                                     if s)
        elif field.startswith("out="):
            values["output"] = tuple(int(d) for d in field[4:].split("x") if d)
        elif field.startswith("k="):
            kh, kw = field[2:].split("x")
            values["kernel"] = (int(kh), int(kw))
        elif field.startswith("s="):
            values["stride"] = int(field[2:])
        elif field in ("SAME", "VALID"):
            values["padding"] = field
        else:
            tail.append(field)
    values["activation"], values["dtype"] = tail
    return OpKey(**values)
