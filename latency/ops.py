"""The TFLite ops a detector will contain, computed from its architecture spec (no conversion).

Mirrors what the converter emits for `build_raw_detector` (BN folded into convs, ReLU6
fused into the add before a block's separable conv, SAME max pools shared by blocks that
pool the same node by the same stride) and the *connectivity* of the cell: blocks no
output reaches emit nothing, and a cell-wide residual emits an ADD only where the cell
input and output shapes match. `tests/latency/test_ops.py` checks the enumeration against
converted flatbuffers. The backbone is one fixed subgraph per (backbone, input size).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

from latency.graph import OpKey
from mnas_tf.arch import MnasFPNSpec

BACKBONE_CHANNELS = {  # pyramid channels of Model Garden's MobileNets at multiplier 1.0
    "MobileNetV2": {3: 32, 4: 96, 5: 320},
    "MobileNetV3Large": {3: 40, 4: 112, 5: 160},
    "MobileNetV3Small": {3: 24, 4: 48, 5: 96},
}


@dataclasses.dataclass(frozen=True)
class DetectorShape:
    """Everything besides the head spec that fixes the op list."""

    input_size: tuple[int, int] = (320, 320)
    backbone: str = "MobileNetV2"
    filter_size_scale: float = 1.0
    num_classes: int = 91
    anchors_per_location: int = 9
    head_filters: int = 64
    head_convs: int = 4
    head_kernel: int = 3
    dtype: str = "float32"

    def backbone_key(self) -> OpKey:
        """The backbone runs as one measured subgraph (it is the same for every head)."""
        h, w = self.input_size
        return OpKey(op=f"SUBGRAPH:{self.backbone}x{self.filter_size_scale:g}",
                     inputs=((1, h, w, 3),), output=(), dtype=self.dtype)

    def backbone_channels(self) -> dict[int, int]:
        if self.backbone not in BACKBONE_CHANNELS:
            raise ValueError(f"no channel table for backbone {self.backbone!r}; known: "
                             f"{sorted(BACKBONE_CHANNELS)}")
        from mnas_tf.arch import make_divisible
        return {l: make_divisible(c * self.filter_size_scale, 8)
                for l, c in BACKBONE_CHANNELS[self.backbone].items()}

    @classmethod
    def from_params(cls, params) -> "DetectorShape":
        """From a Model Garden experiment config (our RetinaNet config)."""
        model = params.task.model
        backbone = model.backbone.get()
        return cls(input_size=tuple(model.input_size[:2]), backbone=backbone.model_id,
                   filter_size_scale=backbone.filter_size_scale, num_classes=model.num_classes,
                   anchors_per_location=len(model.anchor.aspect_ratios) * model.anchor.num_scales,
                   head_filters=model.head.num_filters, head_convs=model.head.num_convs)


def level_sizes(shape: DetectorShape, max_level: int) -> dict[int, tuple[int, int]]:
    """Feature map size per level: stride-2 SAME steps from the input."""
    h, w = shape.input_size
    sizes = {}
    for level in range(1, max_level + 1):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
        sizes[level] = (h, w)
    return sizes


def _conv1x1(h, w, cin, cout, activation="NONE", dtype="float32") -> OpKey:
    return OpKey("CONV_2D", ((1, h, w, cin),), (1, h, w, cout), (1, 1), 1, "VALID",
                 activation, dtype)


def _depthwise(h, w, c, kernel, dtype="float32") -> OpKey:
    return OpKey("DEPTHWISE_CONV_2D", ((1, h, w, c),), (1, h, w, c), (kernel, kernel), 1,
                 "SAME", "NONE", dtype)


def _add(h, w, c, activation="NONE", dtype="float32") -> OpKey:
    return OpKey("ADD", ((1, h, w, c), (1, h, w, c)), (1, h, w, c), activation=activation,
                 dtype=dtype)


def block_ops(inputs: tuple[tuple[int, int], ...], level: int, expansion: int, channels: int,
              kernel: int, merge: str, sizes: Mapping[int, tuple[int, int]],
              dtype: str = "float32") -> tuple[list[OpKey], list[tuple[int, int]]]:
    """Ops of one block given its inputs as (level, channels); also returns the (node
    level, stride) pools it needs, which the cell emits once per distinct pair."""
    ops, pools = [], []
    h, w = sizes[level]
    for in_level, in_channels in inputs:
        step = level - in_level
        if step > 0:
            pools.append((in_level, in_channels, step))
            ops.append(_conv1x1(h, w, in_channels, expansion, dtype=dtype))
        elif step == 0:
            ops.append(_conv1x1(h, w, in_channels, expansion, dtype=dtype))
        else:
            ih, iw = sizes[in_level]
            ops.append(_conv1x1(ih, iw, in_channels, expansion, dtype=dtype))
            factor = 2 ** -step
            ops.append(OpKey("RESIZE_NEAREST_NEIGHBOR", ((1, ih, iw, expansion),),
                             (1, ih * factor, iw * factor, expansion), dtype=dtype))
    if merge == "se":
        squeezed = max(8, expansion // 4)
        ops += [OpKey("MEAN", ((1, h, w, expansion),), (1, 1, 1, expansion), dtype=dtype),
                _conv1x1(1, 1, expansion, squeezed, "RELU", dtype),
                _conv1x1(1, 1, squeezed, expansion, dtype=dtype),
                OpKey("LOGISTIC", ((1, 1, 1, expansion),), (1, 1, 1, expansion), dtype=dtype),
                OpKey("MUL", ((1, h, w, expansion), (1, 1, 1, expansion)),
                      (1, h, w, expansion), dtype=dtype),
                _add(h, w, expansion, "RELU6", dtype)]
    else:
        adds = len(inputs) - 1
        ops += [_add(h, w, expansion, "RELU6" if i == adds - 1 else "NONE", dtype)
                for i in range(adds)]
    ops += [_depthwise(h, w, expansion, kernel, dtype),
            _conv1x1(h, w, expansion, channels, dtype=dtype)]
    return ops, pools


def _pool(in_level: int, channels: int, step: int, sizes, dtype) -> OpKey:
    ih, iw = sizes[in_level]
    oh, ow = sizes[in_level + step]
    return OpKey("MAX_POOL_2D", ((1, ih, iw, channels),), (1, oh, ow, channels), (3, 3),
                 2 ** step, "SAME", "NONE", dtype)


def head_cells(spec: MnasFPNSpec, shape: DetectorShape) -> list[tuple[list[tuple], int]]:
    """The decoder as hashable units, grouped: [(units, times)], in order: extra levels,
    the first cell (its inputs carry backbone widths), then the later cells (all alike).
    A unit's ops depend only on the unit and the level sizes, so a predictor can price
    each unit once and cache it. Per cell: its used blocks, the pools they share and the
    residual adds that fire."""
    backbone = shape.backbone_channels()
    extra: list[tuple] = []
    channels = {}
    top = max(l for l in backbone if l <= spec.max_level)
    for level in range(spec.min_level, spec.max_level + 1):
        if level <= top:
            channels[level] = backbone[level]
        else:
            extra.append(("extra", level, channels[level - 1], spec.channels))
            channels[level] = spec.channels
    node_levels = list(spec.levels) + [b.level for b in spec.blocks]
    used, outputs = spec.used_blocks(), spec.output_nodes()
    first = _cell_units(spec, channels, node_levels, used, outputs)
    groups = [(extra, 1), (first, 1)]
    if spec.repeats > 1:
        steady = {l: spec.channels for l in spec.levels}
        groups.append((_cell_units(spec, steady, node_levels, used, outputs), spec.repeats - 1))
    return groups


def _cell_units(spec, channels, node_levels, used, outputs) -> list[tuple]:
    width = spec.channels
    input_channels = [channels[l] for l in spec.levels]
    units, pools = [], set()
    for i in used:
        block = spec.blocks[i]
        inputs = tuple((node_levels[n], input_channels[n] if n < len(input_channels) else width)
                       for n in block.inputs)
        units.append(("block", inputs, block.level, block.expansion, width, block.kernel,
                      block.merge))
        # the converter emits one pool per distinct (node, stride)
        for n, (lvl, c) in zip(block.inputs, inputs):
            if lvl < block.level:
                pools.add((n, lvl, c, block.level - lvl))
    units += [("pool", lvl, c, step) for _, lvl, c, step in sorted(pools)]
    units += [("add", level, width) for level in outputs if channels[level] == width]
    return units


def head_units(spec: MnasFPNSpec, shape: DetectorShape) -> list[tuple]:
    """All units of the decoder in order (see `head_cells`)."""
    return [unit for units, times in head_cells(spec, shape) for _ in range(times)
            for unit in units]


def unit_ops(unit: tuple, sizes: Mapping[int, tuple[int, int]],
             dtype: str = "float32") -> list[OpKey]:
    """The TFLite ops of one head unit."""
    kind = unit[0]
    if kind == "block":
        _, inputs, level, expansion, channels, kernel, merge = unit
        return block_ops(inputs, level, expansion, channels, kernel, merge, sizes, dtype)[0]
    if kind == "pool":
        _, level, channels, step = unit
        return [_pool(level, channels, step, sizes, dtype)]
    if kind == "add":
        _, level, channels = unit
        return [_add(*sizes[level], channels, dtype=dtype)]
    if kind == "extra":
        _, level, cin, cout = unit
        return [_pool(level - 1, cin, 1, sizes, dtype), _conv1x1(*sizes[level], cin, cout,
                                                                   dtype=dtype)]
    raise ValueError(f"unknown head unit {unit!r}")


def head_ops(spec: MnasFPNSpec, shape: DetectorShape) -> list[OpKey]:
    """The decoder's ops: extra levels, then every cell's used blocks and residuals."""
    sizes = level_sizes(shape, spec.max_level)
    return [op for unit in head_units(spec, shape) for op in unit_ops(unit, sizes, shape.dtype)]


def predictor_ops(spec: MnasFPNSpec, shape: DetectorShape) -> list[OpKey]:
    """The shared-tower separable predictor on every level, then reshapes and concats."""
    return _predictor_for(spec.channels, spec.levels, shape, level_sizes(shape, spec.max_level))


def _predictor_for(channels: int, levels, shape: DetectorShape, sizes) -> list[OpKey]:
    dtype, f, a = shape.dtype, shape.head_filters, shape.anchors_per_location
    ops = []
    boxes, classes = [], []
    for level in levels:
        h, w = sizes[level]
        cin = channels
        for _ in range(shape.head_convs):
            ops += [_depthwise(h, w, cin, shape.head_kernel, dtype),
                    _conv1x1(h, w, cin, f, "RELU6", dtype)]
            cin = f
        for width, out in ((4, boxes), (shape.num_classes, classes)):
            ops += [_depthwise(h, w, f, shape.head_kernel, dtype),
                    _conv1x1(h, w, f, width * a, dtype=dtype),
                    OpKey("RESHAPE", ((1, h, w, width * a),), (1, h * w * a, width),
                          dtype=dtype)]
            out.append((1, h * w * a, width))
    for parts in (boxes, classes):
        total = sum(p[1] for p in parts)
        ops.append(OpKey("CONCATENATION", tuple(parts), (1, total, parts[0][2]), dtype=dtype))
    return ops


def detector_ops(spec: MnasFPNSpec, shape: DetectorShape) -> dict[str, list[OpKey]]:
    """Ops per part (the paper's Figure 5 split): backbone, head, predictor."""
    return {"backbone": [shape.backbone_key()], "head": head_ops(spec, shape),
            "predictor": predictor_ops(spec, shape)}


def space_op_keys(space, shape: DetectorShape) -> list[OpKey]:
    """Every op key any architecture of `space` (a search.space.MnasFPNSpace) can contain
    at `shape`: what a latency table must hold to price the whole space."""
    import itertools
    backbone = shape.backbone_channels()
    sizes = level_sizes(shape, space.max_level)
    levels = space.levels
    keys: dict[str, OpKey] = {}

    def add(ops):
        for op in ops:
            keys.setdefault(str(op), op)
    for c in space.channels:
        spec_levels = [l for l in levels]
        sources = {(l, backbone[l]) for l in spec_levels if l in backbone} | \
            {(l, c) for l in spec_levels}
        for source, level, f, kernel, merge in itertools.product(
                sorted(sources), levels, space.expansions, space.kernels, space.merges):
            ops, pools = block_ops((source, source), level, f, c, kernel, merge, sizes,
                                   shape.dtype)
            add(ops)
            add(_pool(lvl, ch, step, sizes, shape.dtype) for lvl, ch, step in pools)
        for level in levels:
            add([_add(*sizes[level], c, dtype=shape.dtype)])
        top = max(l for l in backbone if l <= space.max_level)
        for level in range(top + 1, space.max_level + 1):
            cin = backbone[top] if level == top + 1 else c
            add(unit_ops(("extra", level, cin, c), sizes, shape.dtype))
        add(_predictor_for(c, levels, shape, sizes))
    return list(keys.values())
