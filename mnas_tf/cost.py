"""Analytic cost counting: multiply-adds (MAdds) and parameter counts.

Used by ``python -m mnas_tf.describe`` to report the cost of detectors and of
their parts (backbone / head / predictor).

MAdds are counted on the inference graph: the model is traced once with
``training=False`` at float32 and every multiply-accumulate op is costed from
its *static* shapes, then the total is reported per image (batch size 1).
Only ops that do multiply-accumulates count (Conv2D, DepthwiseConv2dNative,
Conv2DBackpropInput, MatMul, BatchMatMul, Einsum); batch normalisation,
bias adds, pooling, element-wise adds, activations and resizes count zero,
because at deployment BN and biases are folded into the preceding conv and
the rest is negligible next to the convolutions. This is the MobileNet /
MnasNet / MnasFPN convention (tf_keras' MobileNetV2 at 224x224 counts 300.8M
here; the paper reports 300M).

Cost is per *call*: a layer that is shared and applied to two tensors (for
example a detection predictor shared across feature levels) is costed once
for every call, because it really runs that many times. Parameters are per
*variable*: ``count_params`` counts each trainable variable once, however many
times its layer is called.

Graph notes (TF 2.20, tf_keras): Keras layers and nested Keras models are
inlined into the traced graph (no function-call ops), ``SeparableConv2D``
shows up as ``DepthwiseConv2dNative`` followed by a 1x1 ``Conv2D``, and a
``Dense`` on a rank > 2 input becomes ``Reshape`` + ``MatMul`` (Tensordot).
A grouped ``Conv2D`` (``groups > 1``) runs inside a nested jit-compiled
``tf.function`` that tf_keras traced once with a ``None`` batch dimension, so
its body has unknown shapes; such bodies are re-derived from the static shapes
at the call site (variable reads become placeholders of the variable's shape).
Nested ``tf.function`` calls (``PartitionedCall`` / ``StatefulPartitionedCall``)
and control flow (``While``, ``If``, ``Case``) are followed into their
function bodies. A ``While`` body is costed once (its trip count is not
static) and an ``If`` / ``Case`` costs its most expensive branch.
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Dict, Mapping, Sequence, Union

import numpy as np
import tensorflow as tf

__all__ = [
    "count_madds",
    "count_params",
    "op_breakdown",
    "MADD_OP_TYPES",
    "UnknownDimensionError",
]

ShapeLike = Union[Sequence[Union[int, None]], tf.TensorShape, tf.TensorSpec]
InputShapes = Union[ShapeLike, Mapping[str, ShapeLike], Sequence[ShapeLike]]

# Op types that carry multiply-adds. Everything else counts zero.
MADD_OP_TYPES = frozenset(
    {
        "Conv2D",
        "Conv3D",
        "DepthwiseConv2dNative",
        "Conv2DBackpropInput",
        "MatMul",
        "BatchMatMul",
        "BatchMatMulV2",
        "BatchMatMulV3",
        "Einsum",
    }
)

# Function-valued attributes of control-flow / call ops, and how their
# branches combine: "sum" (all run) or "max" (one of them runs).
_CALL_ATTRS = {
    "f": "sum",  # PartitionedCall, StatefulPartitionedCall
    "body": "sum",  # While, StatelessWhile
    "cond": "sum",
    "then_branch": "max",  # If, StatelessIf
    "else_branch": "max",
    "branches": "max",  # Case, StatelessCase
}


class UnknownDimensionError(ValueError):
    """An op that carries MAdds has a dimension unknown at trace time."""


# ----------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------


def count_madds(model_or_fn: Callable[..., Any], input_shapes: InputShapes) -> int:
    """Multiply-adds of one inference pass, per image (batch size 1).

    Args:
      model_or_fn: a ``tf_keras`` layer/model (called with ``training=False``)
        or any TF-traceable callable taking one argument.
      input_shapes: the input shape including the batch dimension, e.g.
        ``(1, 320, 320, 3)``; or a dict ``name -> shape`` for models that take
        a dict of tensors (e.g. an FPN decoder taking ``{'3': ..., '4': ...}``);
        or a list/tuple of shapes for models taking a list. A ``None`` batch
        dimension is treated as 1; a batch ``b > 1`` is traced as given and
        the total is divided by ``b``. All other dimensions must be known.

    Returns:
      Total MAdds as a Python int.

    Raises:
      UnknownDimensionError: (a ValueError) if an op that carries MAdds has
        an unknown dimension; the message names the op and its shapes.
      ValueError: if ``input_shapes`` is malformed.
    """
    return sum(op_breakdown(model_or_fn, input_shapes).values())


def op_breakdown(
    model_or_fn: Callable[..., Any], input_shapes: InputShapes, by: str = "type"
) -> Dict[str, int]:
    """MAdds per op type (``by='type'``) or per op name (``by='op'``).

    Same arguments and per-image normalisation as :func:`count_madds`; only
    ops with non-zero MAdds appear. With ``by='op'``, ops inside nested
    functions are named ``outer_call_op/function_name/inner_op``.
    Handy for debugging where the cost of a model comes from.
    """
    if by not in ("type", "op"):
        raise ValueError(f"by must be 'type' or 'op', got {by!r}")
    specs, batch = _input_specs(input_shapes)
    concrete = _trace(model_or_fn, specs)
    lookup = _FunctionLookup(concrete.graph)
    per_op = _graph_madds(concrete.graph, lookup, prefix="", stack=())
    out: Dict[str, int] = collections.OrderedDict()
    for (name, op_type), madds in per_op.items():
        key = op_type if by == "type" else name
        out[key] = out.get(key, 0) + madds
    if batch != 1:
        out = collections.OrderedDict((k, v // batch) for k, v in out.items())
    return dict((k, v) for k, v in out.items() if v)


def count_params(layer: Any) -> int:
    """Number of scalars in the *trainable* weights of ``layer``.

    Each variable is counted once even if the layer (or a sub-layer) is shared
    or reachable along several paths. BN gamma/beta are trainable and count;
    BN moving mean/variance are non-trainable and do not. Note that a frozen
    (``trainable=False``) layer therefore has zero parameters by this count.

    Args:
      layer: a ``tf_keras`` layer/model, a ``tf.Module``, or an iterable of
        variables.
    """
    if hasattr(layer, "trainable_weights"):
        variables = layer.trainable_weights
    elif hasattr(layer, "trainable_variables"):
        variables = layer.trainable_variables
    else:
        variables = [v for v in layer if getattr(v, "trainable", True)]
    seen = set()
    total = 0
    for v in variables:
        key = _var_key(v)
        if key in seen:
            continue
        seen.add(key)
        shape = tf.TensorShape(v.shape)
        if not shape.is_fully_defined():
            raise ValueError(f"count_params: variable {v.name!r} has an unknown shape {shape}")
        total += int(np.prod(shape.as_list(), dtype=np.int64))
    return total


# ----------------------------------------------------------------------------
# Tracing
# ----------------------------------------------------------------------------


def _is_shape(obj: Any) -> bool:
    if isinstance(obj, (tf.TensorShape, tf.TensorSpec)):
        return True
    if isinstance(obj, (list, tuple)):
        return all(d is None or isinstance(d, (int, np.integer)) for d in obj)
    return False


def _to_spec(shape: ShapeLike, name: str | None) -> tf.TensorSpec:
    if isinstance(shape, tf.TensorSpec):
        spec_shape, dtype = shape.shape, shape.dtype
    else:
        spec_shape, dtype = tf.TensorShape(shape), tf.float32
    if spec_shape.rank is None or spec_shape.rank == 0:
        raise ValueError(
            f"count_madds: input shape {shape!r} must include a batch dimension"
        )
    dims = spec_shape.as_list()
    if dims[0] is None:
        dims[0] = 1
    return tf.TensorSpec(dims, dtype, name=name)


def _input_specs(input_shapes: InputShapes):
    """Returns (structure of TensorSpecs, batch size)."""
    if isinstance(input_shapes, Mapping):
        if not input_shapes:
            raise ValueError("count_madds: empty input_shapes dict")
        specs: Any = {
            k: _to_spec(v, name=_safe_name(k)) for k, v in input_shapes.items()
        }
        flat = list(specs.values())
    elif _is_shape(input_shapes):
        specs = _to_spec(input_shapes, name="input")
        flat = [specs]
    elif isinstance(input_shapes, (list, tuple)) and all(_is_shape(s) for s in input_shapes):
        specs = [_to_spec(s, name=f"input_{i}") for i, s in enumerate(input_shapes)]
        if not specs:
            raise ValueError("count_madds: empty input_shapes list")
        flat = specs
    else:
        raise ValueError(
            "count_madds: input_shapes must be a shape tuple such as "
            f"(1, 320, 320, 3), a dict name -> shape, or a list of shapes; got {input_shapes!r}"
        )
    batches = {int(s.shape[0]) for s in flat}
    if len(batches) != 1:
        raise ValueError(f"count_madds: inputs disagree on the batch size: {sorted(batches)}")
    return specs, batches.pop()


def _safe_name(key: Any) -> str:
    # TensorSpec names become placeholder names; keep them graph-legal.
    name = "".join(c if c.isalnum() or c in "_." else "_" for c in str(key))
    return name if name and name[0].isalpha() else f"input_{name}"


def _trace(model_or_fn: Callable[..., Any], specs: Any):
    import tf_keras  # Keras 2; imported lazily so this module loads fast.

    if isinstance(model_or_fn, tf_keras.layers.Layer):
        model = model_or_fn

        def call(x):
            return model(x, training=False)

    else:
        call = model_or_fn
    return tf.function(call).get_concrete_function(specs)


# ----------------------------------------------------------------------------
# Graph walking
# ----------------------------------------------------------------------------


class _FunctionLookup:
    """Finds the FuncGraph of a function name used by a call / control-flow op."""

    def __init__(self, root_graph):
        self._root = root_graph
        self._library_def = None  # FunctionDefLibrary, built on demand
        self._library = None  # name -> FunctionDef
        self._cache: Dict[str, Any] = {}

    def graph(self, name: str, from_graph) -> Any:
        if name in self._cache:
            return self._cache[name]
        fn = None
        g = from_graph
        while g is not None and fn is None:
            fn = g._get_function(name)  # pylint: disable=protected-access
            g = getattr(g, "outer_graph", None)
        if fn is None:
            fn = self._root._get_function(name)  # pylint: disable=protected-access
        graph = getattr(fn, "graph", None) if fn is not None else None
        if graph is None:
            graph = self._graph_from_library(name)
        self._cache[name] = graph
        return graph

    def _graph_from_library(self, name: str):
        from tensorflow.python.framework import function_def_to_graph

        fdef = self._fdef(name)
        if fdef is None:
            raise ValueError(f"count_madds: cannot find the body of function {name!r}")
        return function_def_to_graph.function_def_to_graph(fdef)

    def _fdef(self, name: str):
        if self._library is None:
            self._library_def = self._root.as_graph_def().library
            self._library = {f.signature.name: f for f in self._library_def.function}
        return self._library.get(name)

    def specialise(self, name: str, args: list):
        """Rebuilds function ``name`` with the static shapes of ``args``.

        The graph is only for shape inference, never run: every variable read
        of a resource argument is replaced by a placeholder of the variable's
        shape so that the shapes of the ops consuming it are known.
        Returns None when that is not possible.
        """
        from tensorflow.core.framework import types_pb2
        from tensorflow.python.framework import func_graph, function_def_to_graph, importer
        from tensorflow.python.ops import handle_data_util

        fdef = self._fdef(name)
        if fdef is None or not args or len(args) != len(fdef.signature.input_arg):
            return None
        graph_def, _ = function_def_to_graph.function_def_to_graph_def(fdef)
        arg_shapes, var_specs = {}, {}
        for arg_def, tensor in zip(fdef.signature.input_arg, args):
            if arg_def.type == types_pb2.DT_RESOURCE:
                spec = _resource_spec(arg_def, tensor)
                if spec is not None:
                    var_specs[arg_def.name] = spec
            else:
                arg_shapes[arg_def.name] = tensor.shape
        for node in graph_def.node:
            if "_output_shapes" in node.attr:
                del node.attr["_output_shapes"]
            if node.op == "Placeholder" and node.name in arg_shapes:
                # function_def_to_graph_def lets the traced `_output_shapes`
                # override the requested shape; force the call site's.
                node.attr["shape"].shape.CopyFrom(arg_shapes[node.name].as_proto())
            elif node.op == "ReadVariableOp" and node.input:
                source = node.input[0].split(":")[0]
                if source in var_specs:
                    dtype, shape = var_specs[source]
                    node.op = "Placeholder"
                    del node.input[:]
                    node.attr.clear()
                    node.attr["dtype"].type = dtype.as_datatype_enum
                    node.attr["shape"].shape.CopyFrom(shape.as_proto())
        graph_def.library.CopyFrom(self._library_def)
        graph = func_graph.FuncGraph(f"{name}_specialised")
        try:
            with graph.as_default():
                importer.import_graph_def_for_function(graph_def, name="")
        except Exception:  # pylint: disable=broad-except
            return None
        # Resource arguments still feed nested calls: give them handle data so
        # that those calls can be specialised in turn.
        for arg_name, (dtype, shape) in var_specs.items():
            handle = graph.get_tensor_by_name(f"{arg_name}:0")
            handle_data_util.set_handle_data(
                handle, handle_data_util.create_handle_data(shape, dtype)
            )
        return graph


def _func_names(value) -> list:
    """Function names held by an op attribute (func or list(func))."""
    if value is None:
        return []
    if hasattr(value, "name") and isinstance(value.name, (str, bytes)):
        return [tf.compat.as_str(value.name)]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _func_names(v)]
    return []


def _graph_madds(graph, lookup: _FunctionLookup, prefix: str, stack: tuple):
    """OrderedDict (op path, op type) -> MAdds for all ops of ``graph``."""
    out: Dict[tuple, int] = collections.OrderedDict()
    for op in graph.get_operations():
        path = prefix + op.name
        if op.type in MADD_OP_TYPES:
            out[(path, op.type)] = out.get((path, op.type), 0) + _op_madds(op, path)
            continue
        groups: Dict[str, list] = {"sum": [], "max": []}
        for attr, mode in _CALL_ATTRS.items():
            try:
                value = op.get_attr(attr)
            except (ValueError, TypeError):
                continue
            groups[mode].extend(_func_names(value))
        # A call op whose type is itself a function name (legacy graphs).
        if graph._get_function(op.type) is not None:  # pylint: disable=protected-access
            groups["sum"].append(op.type)
        for name in groups["sum"]:
            for key, v in _call_madds(op, name, graph, lookup, path, stack).items():
                out[key] = out.get(key, 0) + v
        if groups["max"]:
            branches = [
                _call_madds(op, name, graph, lookup, path, stack) for name in groups["max"]
            ]
            best = max(branches, key=lambda b: sum(b.values()))
            for key, v in best.items():
                out[key] = out.get(key, 0) + v
    return out


def _call_madds(op, name, graph, lookup, path, stack):
    if name in stack:  # recursion guard; TF functions cannot recurse anyway
        return {}
    prefix, stack = f"{path}/{name}/", stack + (name,)
    body = lookup.graph(name, graph)
    try:
        return _graph_madds(body, lookup, prefix=prefix, stack=stack)
    except UnknownDimensionError:
        # The body may have been traced for a more general signature than this
        # call site (tf.function reuses a trace with a None batch dimension for
        # batch 1; tf_keras' grouped Conv2D does exactly that). Re-derive its
        # shapes from the call site's inputs and try again.
        rebuilt = lookup.specialise(name, _call_args(op, name, body))
        if rebuilt is None:
            raise
        return _graph_madds(rebuilt, lookup, prefix=prefix, stack=stack)


def _call_args(op, name, body) -> list:
    """The call-site tensors feeding the arguments of function ``name``."""
    inputs = list(op.inputs)
    n_args = len(body.inputs)
    # If / Case take a leading predicate / branch index; calls and While loops
    # pass their inputs straight through.
    if len(inputs) == n_args + 1 and op.type in ("If", "StatelessIf", "Case", "StatelessCase"):
        inputs = inputs[1:]
    return inputs if len(inputs) == n_args else []


def _static(op, path: str, tensors) -> list:
    """Fully-defined shapes of ``tensors`` or a ValueError naming ``op``."""
    shapes = []
    for t in tensors:
        shape = t.shape
        if shape.rank is None or not shape.is_fully_defined():
            all_shapes = ", ".join(
                f"{x.name}: {x.shape}" for x in list(op.inputs) + list(op.outputs)
            )
            raise UnknownDimensionError(
                f"count_madds: op '{path}' ({op.type}) has an unknown dimension "
                f"({all_shapes}); trace with fully-defined input shapes"
            )
        shapes.append([int(d) for d in shape.as_list()])
    return shapes


def _prod(dims) -> int:
    total = 1
    for d in dims:
        total *= int(d)
    return total


def _op_madds(op, path: str) -> int:
    t = op.type
    if t in ("Conv2D", "Conv3D"):
        # filter: [*spatial, in_c / groups, out_c]; each output element is a
        # dot product over spatial * (in_c / groups). Layout independent.
        (filt, out) = _static(op, path, [op.inputs[1], op.outputs[0]])
        return _prod(out) * _prod(filt[:-1])
    if t == "DepthwiseConv2dNative":
        # filter: [kh, kw, in_c, mult]; output has in_c * mult channels.
        (filt, out) = _static(op, path, [op.inputs[1], op.outputs[0]])
        return _prod(out) * filt[0] * filt[1]
    if t == "Conv2DBackpropInput":
        # Transposed conv. inputs: (output sizes, filter [kh, kw, out_c, in_c],
        # x [n, h, w, in_c]): every input pixel scatters kh*kw*out_c products
        # per input channel.
        (filt, x) = _static(op, path, [op.inputs[1], op.inputs[2]])
        return _prod(x) * filt[0] * filt[1] * filt[2]
    if t == "MatMul":
        (a, b) = _static(op, path, [op.inputs[0], op.inputs[1]])
        m, k = (a[1], a[0]) if op.get_attr("transpose_a") else (a[0], a[1])
        n = b[0] if op.get_attr("transpose_b") else b[1]
        return m * n * k
    if t in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
        (a, out) = _static(op, path, [op.inputs[0], op.outputs[0]])
        k = a[-2] if op.get_attr("adj_x") else a[-1]
        return _prod(out) * k
    if t == "Einsum":
        return _einsum_madds(op, path)
    raise AssertionError(t)


def _einsum_madds(op, path: str) -> int:
    equation = tf.compat.as_str(op.get_attr("equation")).replace(" ", "")
    shapes = _static(op, path, list(op.inputs))
    lhs = equation.split("->")[0].split(",")
    if "." in equation or len(lhs) != len(shapes):
        raise ValueError(
            f"count_madds: op '{path}' (Einsum) uses unsupported equation {equation!r}"
        )
    if len(lhs) == 1:
        return 0  # transpose / reduction, no multiplies
    # Every combination of all distinct indices is one multiply-add (for two
    # operands; longer chains are costed as if contracted in one step).
    sizes: Dict[str, int] = {}
    for labels, shape in zip(lhs, shapes):
        for label, dim in zip(labels, shape):
            sizes[label] = max(sizes.get(label, 1), dim)
    return _prod(sizes.values())


def _resource_spec(arg_def, tensor):
    """(dtype, shape) of the variable behind a resource argument, if known."""
    from tensorflow.python.ops import handle_data_util

    shapes_and_types = []
    try:
        data = handle_data_util.get_resource_handle_data(tensor)
        if data.is_set:
            shapes_and_types = list(data.shape_and_type)
    except Exception:  # pylint: disable=broad-except
        pass
    if not shapes_and_types:
        shapes_and_types = list(arg_def.handle_data)
    if len(shapes_and_types) != 1:
        return None
    entry = shapes_and_types[0]
    return tf.dtypes.as_dtype(entry.dtype), tf.TensorShape(entry.shape)


def _var_key(v) -> Any:
    # Mixed-precision AutoCastVariable wraps the real variable.
    inner = getattr(v, "_variable", v)
    try:
        return inner.ref()
    except (AttributeError, TypeError):
        return id(inner)
