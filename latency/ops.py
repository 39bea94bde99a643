"""The TFLite ops a detector will contain, computed from its architecture spec (no conversion).

Mirrors what the converter emits for `build_raw_detector` (BN folded into convs, ReLU6
fused into the add before a block's separable conv, SAME max pools shared by blocks that
pool the same node by the same stride) and the *connectivity* of the cell: blocks no
output reaches emit nothing, and a cell-wide residual emits an ADD only where the cell
input and output shapes match. `tests/latency/test_lut.py` checks the enumeration against
converted flatbuffers. The backbone is one fixed subgraph per (backbone, input size).

Every cell family is covered: No-Expand and Conn-Search are MnasFPN blocks; with
`sdo: false` each input's 1x1 runs at the input resolution and its pool is its own
("block_nosdo" units); NAS-FPN heads project the backbone levels, pool/upsample nodes
without convs (the converter emits one op per distinct node and target level, and one
REDUCE_MAX + LOGISTIC per distinct gate), and have no cell-wide residuals.

`space_op_keys` lists every key a search space (any family) can produce, from the same
unit builders, so a table built from it prices every architecture of that space.
"""

from __future__ import annotations

import dataclasses
import itertools
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
              dtype: str = "float32", sdo: bool = True
              ) -> tuple[list[OpKey], list[tuple[int, int]]]:
    """Ops of one block given its inputs as (level, channels); also returns the (node
    level, stride) pools it needs, which the cell emits once per distinct pair (with
    `sdo=False` every pool follows its own 1x1 and is part of the block's ops)."""
    ops, pools = [], []
    h, w = sizes[level]
    for in_level, in_channels in inputs:
        step = level - in_level
        if step > 0 and not sdo:
            ih, iw = sizes[in_level]
            ops += [_conv1x1(ih, iw, in_channels, expansion, dtype=dtype),
                    _pool(in_level, expansion, step, sizes, dtype)]
        elif step > 0:
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


def _pool(in_level: int, channels: int, step: int, sizes, dtype, kernel: int = 3) -> OpKey:
    ih, iw = sizes[in_level]
    oh, ow = sizes[in_level + step]
    return OpKey("MAX_POOL_2D", ((1, ih, iw, channels),), (1, oh, ow, channels),
                 (kernel, kernel), 2 ** step, "SAME", "NONE", dtype)


def _nasfpn_resample(in_level: int, level: int, channels: int, sizes, dtype) -> OpKey:
    """NAS-FPN's conv-free resampling: max pool with kernel = stride, or nearest upsampling."""
    step = level - in_level
    if step > 0:
        return _pool(in_level, channels, step, sizes, dtype, kernel=2 ** step)
    ih, iw = sizes[in_level]
    factor = 2 ** -step
    return OpKey("RESIZE_NEAREST_NEIGHBOR", ((1, ih, iw, channels),),
                 (1, ih * factor, iw * factor, channels), dtype=dtype)


def nasfpn_block_ops(level: int, channels: int, merge: str, recycled: int, separable: bool,
                     sizes, dtype: str = "float32") -> list[OpKey]:
    """A NAS-FPN block after resampling: gated MUL (attention), the adds (ReLU fused into
    the last), then the 3x3 conv (depthwise + 1x1 when separable)."""
    h, w = sizes[level]
    ops = []
    if merge == "attention":
        ops.append(OpKey("MUL", ((1, h, w, channels), (1, 1, 1, channels)),
                         (1, h, w, channels), dtype=dtype))
    adds = 1 + recycled
    ops += [_add(h, w, channels, "RELU" if i == adds - 1 else "NONE", dtype)
            for i in range(adds)]
    if separable:
        return ops + [_depthwise(h, w, channels, 3, dtype),
                      _conv1x1(h, w, channels, channels, dtype=dtype)]
    return ops + [OpKey("CONV_2D", ((1, h, w, channels),), (1, h, w, channels), (3, 3), 1,
                        "SAME", "NONE", dtype)]


def _gate_ops(level: int, channels: int, sizes, dtype) -> list[OpKey]:
    """Global attention's gate; the max over a 1x1 map is the identity and is dropped."""
    h, w = sizes[level]
    gate = [OpKey("LOGISTIC", ((1, 1, 1, channels),), (1, 1, 1, channels), dtype=dtype)]
    if (h, w) == (1, 1):
        return gate
    return [OpKey("REDUCE_MAX", ((1, h, w, channels),), (1, 1, 1, channels), dtype=dtype)] + gate


def _pyramid_inputs(shape: DetectorShape, family: str, sdo: bool, min_level: int,
                    max_level: int, width: int) -> tuple[list[tuple], dict[int, int], set]:
    """The units that make the first cell's inputs (NAS-FPN projections, extra levels), the
    width of that input per level, and the resampled tensors they already emit (see
    `head_cells`). Shared by `head_cells` and `space_units` so both agree on the pyramid."""
    backbone = shape.backbone_channels()
    extra: list[tuple] = []
    channels: dict[int, int] = {}
    seen: set = set()  # resampled tensors already emitted, by (tensor identity, how)
    top = max(l for l in backbone if l <= max_level)
    nasfpn = family == "nasfpn"
    for level in range(min_level, max_level + 1):
        if level <= top:
            channels[level] = backbone[level]
            if nasfpn and backbone[level] != width:
                extra.append(("project", level, backbone[level], width))
                channels[level] = width
        elif nasfpn:
            extra.append(("nas_resample", level - 1, level, width))
            seen.add((("in", level - 1), ("resample", level)))
            channels[level] = width
        else:
            extra.append(("extra" if sdo else "extra_nosdo", level, channels[level - 1], width))
            if sdo:
                seen.add((("in", level - 1), ("pool", 1)))
            channels[level] = width
    return extra, channels, seen


def head_cells(spec: MnasFPNSpec, shape: DetectorShape) -> list[tuple[list[tuple], int]]:
    """The decoder as hashable units, grouped: [(units, times)], in order: extra levels,
    then the cells, consecutive identical cells as one group (typically the first cell,
    whose inputs carry backbone widths, then the later cells, all alike).
    A unit's ops depend only on the unit and the level sizes, so a predictor can price
    each unit once and cache it. Per cell: its used blocks, the pools they share and the
    residual adds that fire.

    Pools and NAS-FPN resamples/gates are emitted once per distinct *tensor* over the
    whole head, as the converter's common-subexpression elimination does: a cell input
    that is the previous cell's block output (no residual added) or the tensor an extra
    level pooled is the same tensor, so pooling it again the same way costs nothing."""
    extra, channels, seen = _pyramid_inputs(shape, spec.family, spec.sdo, spec.min_level,
                                            spec.max_level, spec.channels)
    groups = [(extra, 1)]
    identities = [("in", l) for l in spec.levels]
    for cell in range(spec.repeats):
        units, identities = _cell_units(spec, cell, channels, identities, seen)
        if len(groups) > 1 and groups[-1][0] == units:
            groups[-1] = (units, groups[-1][1] + 1)
        else:
            groups.append((units, 1))
        channels = {l: spec.channels for l in spec.levels}
    return groups


def _cell_units(spec, cell, channels, identities, seen) -> tuple[list[tuple], list]:
    """Units of cell `cell` whose inputs are the tensors `identities`; also returns the
    identities of its outputs (the next cell's inputs)."""
    num_levels, width = spec.num_levels, spec.channels
    node_levels = list(spec.levels) + [b.level for b in spec.blocks]
    outputs = spec.output_nodes()

    def identity(n):
        return identities[n] if n < num_levels else ("node", cell, n)

    def once(unit, key, units):
        if key not in seen:
            seen.add(key)
            units.append(unit)
    if spec.family == "nasfpn":
        return (_nasfpn_cell_units(spec, node_levels, identity, once),
                [identity(outputs[l]) for l in spec.levels])
    input_channels = [channels[l] for l in spec.levels]
    units, pools = [], []
    for i in spec.used_blocks():
        block = spec.blocks[i]
        inputs = tuple((node_levels[n], input_channels[n] if n < num_levels else width)
                       for n in block.inputs)
        units.append(("block" if spec.sdo else "block_nosdo", inputs, block.level,
                      block.expansion, width, block.kernel, block.merge))
        for n, (lvl, c) in zip(block.inputs, inputs):
            if lvl < block.level and spec.sdo:
                step = block.level - lvl
                once(("pool", lvl, c, step), (identity(n), ("pool", step)), pools)
    units += sorted(pools)
    fired = [level for level in outputs if channels[level] == width]
    units += [("add", level, width) for level in fired]
    return units, [("residual", cell, l) if l in fired else identity(outputs[l])
                   for l in spec.levels]


def _nasfpn_cell_units(spec, node_levels, identity, once) -> list[tuple]:
    """Resamples once per distinct (tensor, target level), gates once per distinct gated
    tensor, then each block's merge and conv; every node is C wide."""
    width, units = spec.channels, []
    recycled = spec.recycled_inputs()
    for i in spec.used_blocks():
        block = spec.blocks[i]
        for n in block.inputs:
            if node_levels[n] != block.level:
                once(("nas_resample", node_levels[n], block.level, width),
                     (identity(n), ("resample", block.level)), units)
        if block.merge == "attention":
            a, b = block.inputs
            coarser = b if node_levels[b] > node_levels[a] else a
            once(("nas_gate", block.level, width), (identity(coarser), ("gate", block.level)),
                 units)
        units.append(("nas_block", block.level, width, block.merge, len(recycled[i]),
                      spec.separable))
    return units


def head_units(spec: MnasFPNSpec, shape: DetectorShape) -> list[tuple]:
    """All units of the decoder in order (see `head_cells`)."""
    return [unit for units, times in head_cells(spec, shape) for _ in range(times)
            for unit in units]


def unit_ops(unit: tuple, sizes: Mapping[int, tuple[int, int]],
             dtype: str = "float32") -> list[OpKey]:
    """The TFLite ops of one head unit."""
    kind = unit[0]
    if kind in ("block", "block_nosdo"):
        _, inputs, level, expansion, channels, kernel, merge = unit
        return block_ops(inputs, level, expansion, channels, kernel, merge, sizes, dtype,
                         sdo=kind == "block")[0]
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
    if kind == "extra_nosdo":
        _, level, cin, cout = unit
        return [_conv1x1(*sizes[level - 1], cin, cout, dtype=dtype),
                _pool(level - 1, cout, 1, sizes, dtype)]
    if kind == "project":
        _, level, cin, cout = unit
        return [_conv1x1(*sizes[level], cin, cout, dtype=dtype)]
    if kind == "nas_resample":
        _, in_level, level, channels = unit
        return [_nasfpn_resample(in_level, level, channels, sizes, dtype)]
    if kind == "nas_gate":
        _, level, channels = unit
        return _gate_ops(level, channels, sizes, dtype)
    if kind == "nas_block":
        _, level, channels, merge, recycled, separable = unit
        return nasfpn_block_ops(level, channels, merge, recycled, separable, sizes, dtype)
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
        if dtype == "int8":  # full-integer model, float outputs (export.tflite --quant int8)
            ops.append(OpKey("DEQUANTIZE", ((1, total, parts[0][2]),), (1, total, parts[0][2]),
                             dtype=dtype))
    return ops


def detector_ops(spec: MnasFPNSpec, shape: DetectorShape) -> dict[str, list[OpKey]]:
    """Ops per part (the paper's Figure 5 split): backbone, head, predictor."""
    return {"backbone": [shape.backbone_key()], "head": head_ops(spec, shape),
            "predictor": predictor_ops(spec, shape)}


def space_units(space, shape: DetectorShape) -> list[tuple]:
    """Head units (see `head_cells`) whose ops are exactly the ops every architecture of
    `space` (a `mnas_tf.spaces.CellSpace`, any family) can contain. Enumerated over the
    space's choices, not sampled, with the first cell's inputs (backbone widths,
    projections, extra levels) from the same `_pyramid_inputs` the predictor walks.

    A block's ops are its per-input ops (each input's 1x1 and pool or resize, which
    depend on the input, the block's level and F), the merge (which depends on the number
    of inputs, not on which) and its conv; so block units cover the sources with
    (s, s) and the merges and convs with (s0,) * degree instead of the far larger product
    of real wirings, whose ops are the same. Residual adds fire where the first cell's
    input is already C wide, and at every level from the second cell on. Only with
    repeats = 1 and one block per level can a few same-level reads listed here not occur
    (measured needlessly, never missed)."""
    family, levels = space.family, space.levels
    nasfpn = family == "nasfpn"
    sdo = not nasfpn and getattr(space, "sdo", True)
    units: dict[tuple, None] = {}  # ordered and deduplicated
    for c in space.channels:
        extra, first, _ = _pyramid_inputs(shape, family, sdo, space.min_level,
                                          space.max_level, c)
        units.update(dict.fromkeys(extra))
        if nasfpn:
            separable = getattr(space, "separable", True)
            for level in levels:
                units.update(dict.fromkeys(("nas_resample", src, level, c)
                                           for src in levels if src != level))
                if "attention" in space.merges:
                    units[("nas_gate", level, c)] = None
                # recycled into an output: unread same-level nodes, at most the cell input
                # and every intermediate block
                units.update(dict.fromkeys(("nas_block", level, c, merge, recycled, separable)
                                           for merge in space.merges for recycled in
                                           range(space.intermediate_blocks + 2)))
            continue
        # a block reads a first-cell input (its own width) or a C-wide node: a block's
        # output, an extra level, or any input of a later cell
        sources = list(dict.fromkeys([*sorted(first.items()), *((l, c) for l in levels)]))
        expansions = (c,) if family == "no_expand" else space.expansions
        kind = "block" if sdo else "block_nosdo"
        for level, f in itertools.product(levels, expansions):
            # each input's 1x1 and pool or resize: every source, at every block level and F
            units.update(dict.fromkeys((kind, (source, source), level, f, c, space.kernels[0],
                                        space.merges[0]) for source in sources))
            # the merge (it depends on the number of inputs) and the conv
            units.update(dict.fromkeys((kind, (sources[0],) * degree, level, f, c, kernel, merge)
                                       for kernel, merge, degree in itertools.product(
                                           space.kernels, space.merges,
                                           range(2, space.max_inputs + 1))))
        if sdo:
            units.update(dict.fromkeys(("pool", l, w, level - l) for l, w in sources
                                       for level in levels if level > l))
        units.update(dict.fromkeys(("add", level, c) for level in levels
                                   if first[level] == c or space.repeats > 1))
    return list(units)


def space_op_keys(space, shape: DetectorShape) -> list[OpKey]:
    """Every op key (besides the backbone subgraph, `shape.backbone_key()`) any
    architecture of `space` (a `mnas_tf.spaces.CellSpace`, any family) can contain at
    `shape`: what a latency table must hold to price the whole space. Built from the
    predictor's own unit builders (`space_units` -> `unit_ops`, `_predictor_for`), so the
    table and the predictor cannot disagree on an op's shape."""
    sizes = level_sizes(shape, space.max_level)
    ops = [op for unit in space_units(space, shape) for op in unit_ops(unit, sizes, shape.dtype)]
    for c in space.channels:
        ops += _predictor_for(c, space.levels, shape, sizes)
    return list(dict.fromkeys(ops))
