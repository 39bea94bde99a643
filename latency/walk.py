"""The head's price in one pass: `latency.ops.head_cells`'s rules, without building units
for every cell.

A search prices thousands of children a second, so the walk matters more than the sums.
`head_cells` builds every cell's unit list and compares cells to group them; here the
spec's structure (node levels, outputs, used blocks) is read once, the blocks of cells
after the first (all inputs C wide, so the same units in every such cell) are priced
once and multiplied, and only pools and residuals, which depend on which tensors earlier
cells already pooled, are walked cell by cell. `tests/latency/test_lut.py` checks it
against `head_cells` on sampled architectures of every MnasFPN-family space. NAS-FPN
cells keep the unit walk.
"""

from __future__ import annotations

from typing import Callable

from latency.ops import DetectorShape, _pyramid_inputs


_PYRAMIDS: dict = {}


def _pyramid(shape: DetectorShape, family: str, sdo: bool, min_level: int, max_level: int,
             width: int):
    key = (id(shape), family, sdo, min_level, max_level, width)
    found = _PYRAMIDS.get(key)
    if found is None or found[0] is not shape:
        extra, channels, seen = _pyramid_inputs(shape, family, sdo, min_level, max_level,
                                                width)
        found = _PYRAMIDS[key] = (shape, tuple(extra), channels, frozenset(seen))
    return found[1:]


def _used(blocks, outputs: dict, num_levels: int) -> list[int]:
    needed: set[int] = set()
    stack = list(outputs.values())
    while stack:
        node = stack.pop()
        if node < num_levels or node in needed:
            continue
        needed.add(node)
        stack.extend(blocks[node - num_levels].inputs)
    return sorted(n - num_levels for n in needed)


def head_cost(spec, shape: DetectorShape, known: dict,
              price: Callable[[tuple], tuple[float, int]]) -> tuple[float, int]:
    """(summed unit costs, estimated ops) of an MnasFPN-family head (not NAS-FPN): a unit
    costs `known[unit]` ((us, estimated)), or `price(unit)` the first time."""

    def cost(unit):
        found = known.get(unit)
        return found if found is not None else price(unit)
    lo, hi, width, sdo = spec.min_level, spec.max_level, spec.channels, spec.sdo
    levels = range(lo, hi + 1)
    num_levels = hi - lo + 1
    blocks = spec.blocks
    extra, first, seen0 = _pyramid(shape, spec.family, sdo, lo, hi, width)
    total, estimated = 0.0, 0
    for unit in extra:
        c, e = cost(unit)
        total, estimated = total + c, estimated + e
    node_levels = [*levels, *(b.level for b in blocks)]
    outputs: dict[int, int] = {}
    for i, block in enumerate(blocks):
        outputs[block.level] = num_levels + i
    used = _used(blocks, outputs, num_levels)
    kind = "block" if sdo else "block_nosdo"
    first_channels = [first[level] for level in levels]
    repeats = spec.repeats
    # blocks: the first cell reads backbone widths, every later cell the same C-wide inputs
    for in_channels, times in ((first_channels, 1), ([width] * num_levels, repeats - 1)):
        if times <= 0:
            continue
        for i in used:
            block = blocks[i]
            unit = (kind, tuple((node_levels[n], in_channels[n] if n < num_levels else width)
                                for n in block.inputs),
                    block.level, block.expansion, width, block.kernel, block.merge)
            c, e = cost(unit)
            total, estimated = total + c * times, estimated + e * times
    # pools (once per distinct tensor and stride, over the whole head) and residual adds
    seen = set(seen0)
    identities = [("in", level) for level in levels]
    in_channels = first_channels
    for cell in range(repeats):
        if sdo:
            pools = []
            for i in used:
                block = blocks[i]
                for n in block.inputs:
                    level = node_levels[n]
                    if level < block.level:
                        step = block.level - level
                        key = (identities[n] if n < num_levels else ("node", cell, n),
                               ("pool", step))
                        if key not in seen:
                            seen.add(key)
                            pools.append(("pool", level,
                                          in_channels[n] if n < num_levels else width, step))
            for unit in pools:
                c, e = cost(unit)
                total, estimated = total + c, estimated + e
        fired = [level for level in outputs if in_channels[level - lo] == width]
        for level in fired:
            c, e = cost(("add", level, width))
            total, estimated = total + c, estimated + e
        identities = [("residual", cell, level) if level in fired else
                      ("node", cell, outputs[level]) for level in levels]
        in_channels = [width] * num_levels
    return total, estimated
