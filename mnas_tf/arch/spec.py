"""MnasFPN-family head architectures as frozen, validated, JSON-serialisable data.

One spec class describes every cell family the paper compares (`family`):

- "mnasfpn": inverted-residual blocks, 2 inputs, merge sum|se, kernel 3/5/7, expansion F;
- "no_expand": the same with F = C for every block (the paper's No-Expand ablation);
- "conn_search": 2..4 distinct inputs per block, merged by addition (paper §3.4);
- "nasfpn": NAS-FPN(-Lite) cells: 2 inputs, merge sum|attention, a fixed 3x3 conv
  (separable when `separable`), no expansion; unconsumed same-level nodes are recycled
  into the output blocks. `sdo` does not apply (NAS-FPN resampling is fixed) and is
  stored as false.

`sdo: false` is the SDO ablation (paper Table 3): every 1x1 conv runs before resizing.

A head is `repeats` cells with separate weights; a cell is a list of blocks. Nodes are
numbered the way Google's MnasFPN code numbers them: the cell inputs first (node 0 is
level `min_level`, node 1 the next level, ...), then one new node per block in order.
A block merges two or more earlier nodes at its own level, so it can only read nodes
that already exist.

The cell output at level L is the *last* block whose level is L (for the published cell
that is exactly the last four nodes, as the reference code requires). Blocks that no
output reaches are legal and are simply not built: this is the learnable block count.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterable, Mapping, Optional, Sequence

MERGE_OPS = ("sum", "se")
NASFPN_MERGE_OPS = ("sum", "attention")
KERNEL_SIZES = (3, 5, 7)
NASFPN_KERNEL = 3
FAMILIES = ("mnasfpn", "no_expand", "conn_search", "nasfpn")
IRB_FAMILIES = ("mnasfpn", "no_expand", "conn_search")  # inverted-residual blocks
MIN_INPUTS = 2
MAX_INPUTS = 4
LOWEST_LEVEL = 2
HIGHEST_LEVEL = 7


class ArchitectureError(ValueError):
    """An architecture spec that cannot be built; the message names block and field."""


def _fail(where: str, field: str, problem: str) -> None:
    raise ArchitectureError(f"{where}, field '{field}': {problem}")


def _check_keys(where: str, data: Mapping[str, Any], allowed: Iterable[str],
                required: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if not isinstance(data, Mapping):
        raise ArchitectureError(f"{where}: expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ArchitectureError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"valid fields are {', '.join(allowed)}")
    missing = [k for k in required if k not in data]
    if missing:
        raise ArchitectureError(f"{where}: missing field(s) {', '.join(map(repr, missing))}")


def parse_json(text: str, what: str) -> Any:
    """json.loads with an ArchitectureError that says which kind of spec was malformed."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ArchitectureError(f"{what} JSON is malformed: {e}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One searched block: merge `inputs` at `level`, expand to F, separable conv to C.

    NAS-FPN blocks have no expansion and a fixed 3x3 kernel: both are None there. For the
    other families an omitted kernel means 3 (the spec fills it in).
    """

    inputs: tuple[int, ...]
    level: int
    expansion: Optional[int] = None
    merge: str = "sum"
    kernel: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        data = {"inputs": list(self.inputs), "level": self.level,
                "expansion": self.expansion, "merge": self.merge, "kernel": self.kernel}
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "block") -> "BlockSpec":
        fields = [f.name for f in dataclasses.fields(cls)]
        _check_keys(where, data, fields, ("inputs", "level"))
        inputs = data["inputs"]
        if not isinstance(inputs, (list, tuple)):
            _fail(where, "inputs", f"expected a list of node indices, got {inputs!r}")
        return cls(inputs=tuple(inputs), level=data["level"], expansion=data.get("expansion"),
                   merge=data.get("merge", "sum"), kernel=data.get("kernel"))


@dataclasses.dataclass(frozen=True)
class MnasFPNSpec:
    """A whole MnasFPN head: the cell's blocks, its width C, repeats and pyramid levels."""

    blocks: tuple[BlockSpec, ...]
    channels: int
    repeats: int = 4
    min_level: int = 3
    max_level: int = 6
    name: str = ""
    family: str = "mnasfpn"
    sdo: bool = True
    separable: bool = True

    def __post_init__(self):
        blocks = tuple(self.blocks)
        if self.family == "nasfpn":
            object.__setattr__(self, "sdo", False)  # NAS-FPN resampling is fixed
            blocks = tuple(dataclasses.replace(b, kernel=None)
                           if isinstance(b, BlockSpec) and b.kernel == NASFPN_KERNEL else b
                           for b in blocks)
        else:
            blocks = tuple(dataclasses.replace(b, kernel=3)
                           if isinstance(b, BlockSpec) and b.kernel is None else b
                           for b in blocks)
        object.__setattr__(self, "blocks", blocks)
        self.validate()

    # ----------------------------------------------------------------- structure
    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(range(self.min_level, self.max_level + 1))

    @property
    def num_levels(self) -> int:
        return self.max_level - self.min_level + 1

    def node_level(self, node: int) -> int:
        """Pyramid level of a node: cell inputs first, then one node per block."""
        if node < self.num_levels:
            return self.min_level + node
        return self.blocks[node - self.num_levels].level

    def output_nodes(self) -> dict[int, int]:
        """Level -> node index of the cell output at that level (last block there)."""
        outputs: dict[int, int] = {}
        for i, block in enumerate(self.blocks):
            outputs[block.level] = self.num_levels + i
        return outputs

    def recycled_inputs(self) -> tuple[tuple[int, ...], ...]:
        """Per block, the extra nodes it adds in unresampled (NAS-FPN only, else empty).

        NAS-FPN's output blocks also sum every earlier node at their level that no block
        has read yet (counting reads in block order), so no same-level node is wasted.
        Output blocks are the last block at each level, the same rule as `output_nodes`.
        """
        if self.family != "nasfpn":
            return tuple(() for _ in self.blocks)
        outputs = set(self.output_nodes().values())
        reads = [0] * (self.num_levels + len(self.blocks))
        recycled = []
        for i, block in enumerate(self.blocks):
            node = self.num_levels + i
            for n in block.inputs:
                reads[n] += 1
            extra = ()
            if node in outputs:
                extra = tuple(n for n in range(node) if reads[n] == 0
                              and self.node_level(n) == block.level)
                for n in extra:
                    reads[n] += 1
            recycled.append(extra)
        return tuple(recycled)

    def block_sources(self, index: int) -> tuple[int, ...]:
        """Every node block `index` reads: its inputs, then any recycled nodes."""
        return tuple(self.blocks[index].inputs) + self.recycled_inputs()[index]

    def used_blocks(self) -> tuple[int, ...]:
        """Indices of the blocks some cell output depends on; the others are not built."""
        needed: set[int] = set()
        stack = list(self.output_nodes().values())
        recycled = self.recycled_inputs()
        while stack:
            node = stack.pop()
            if node < self.num_levels or node in needed:
                continue
            needed.add(node)
            index = node - self.num_levels
            stack.extend(self.blocks[index].inputs + recycled[index])
        return tuple(sorted(n - self.num_levels for n in needed))

    def pruned(self) -> "MnasFPNSpec":
        """The same head without the blocks no output reaches, nodes renumbered: what is
        built, priced and counted. NAS-FPN cells recycle every unconsumed node into an
        output, so none of their blocks is ever unreached and they come back unchanged."""
        used = self.used_blocks()
        if len(used) == len(self.blocks) or self.family == "nasfpn":
            return self
        renumber = {n: n for n in range(self.num_levels)}
        renumber.update({self.num_levels + i: self.num_levels + k for k, i in enumerate(used)})
        blocks = tuple(dataclasses.replace(self.blocks[i], inputs=tuple(
            renumber[n] for n in self.blocks[i].inputs)) for i in used)
        return self.replace(blocks=blocks)

    @property
    def cell_residuals(self) -> bool:
        """MnasFPN-family cells add each cell input to the output at its level; NAS-FPN
        cells do not."""
        return self.family != "nasfpn"

    # ----------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raises ArchitectureError naming the block and field of the first problem."""
        where = f"architecture {self.name!r}" if self.name else "architecture"
        for field in ("channels", "repeats", "min_level", "max_level"):
            if not _is_int(getattr(self, field)):
                _fail(where, field, f"expected an integer, got {getattr(self, field)!r}")
        if self.channels <= 0:
            _fail(where, "channels", f"must be positive, got {self.channels}")
        if self.repeats <= 0:
            _fail(where, "repeats", f"must be positive, got {self.repeats}")
        if self.family not in FAMILIES:
            _fail(where, "family", f"{self.family!r} is not a cell family; choose one of "
                  f"{FAMILIES}")
        for field in ("sdo", "separable"):
            if not isinstance(getattr(self, field), bool):
                _fail(where, field, f"expected true or false, got {getattr(self, field)!r}")
        if not self.separable and self.family != "nasfpn":
            _fail(where, "separable", f"family {self.family!r} always uses separable convs; "
                  f"only family 'nasfpn' has a full-conv variant (separable: false)")
        if not LOWEST_LEVEL <= self.min_level < self.max_level <= HIGHEST_LEVEL:
            raise ArchitectureError(
                f"{where}, fields 'min_level'/'max_level': need "
                f"{LOWEST_LEVEL} <= min_level < max_level <= {HIGHEST_LEVEL}, got "
                f"{self.min_level}..{self.max_level}")
        if not self.blocks:
            _fail(where, "blocks", "a cell needs at least one block")
        for i, block in enumerate(self.blocks):
            self._validate_block(i, block)
        missing = [lvl for lvl in self.levels if lvl not in self.output_nodes()]
        if missing:
            _fail(where, "blocks",
                  f"no block outputs level(s) {missing}, so those cell outputs have no path "
                  f"from any block; every level {self.min_level}..{self.max_level} needs one")

    def _validate_block(self, index: int, block: BlockSpec) -> None:
        where = f"block {index}"
        if not isinstance(block, BlockSpec):
            raise ArchitectureError(f"{where}: expected a BlockSpec, got {type(block).__name__}")
        built = self.num_levels + index  # nodes 0 .. built-1 exist when this block runs
        if not MIN_INPUTS <= len(block.inputs) <= MAX_INPUTS:
            _fail(where, "inputs",
                  f"needs {MIN_INPUTS}..{MAX_INPUTS} input nodes, got {list(block.inputs)}")
        for node in block.inputs:
            if not _is_int(node):
                _fail(where, "inputs", f"node indices must be integers, got {node!r}")
            if node < 0 or node >= built:
                _fail(where, "inputs",
                      f"node {node} is not built yet; block {index} can read nodes 0..{built - 1}"
                      f" (0..{self.num_levels - 1} are the cell inputs at levels "
                      f"{self.min_level}..{self.max_level}, then one node per earlier block)")
        if len(set(block.inputs)) != len(block.inputs):
            _fail(where, "inputs", f"duplicate input nodes in {list(block.inputs)}")
        if not _is_int(block.level) or not self.min_level <= block.level <= self.max_level:
            _fail(where, "level", f"{block.level!r} is outside the pyramid "
                  f"{self.min_level}..{self.max_level}")
        if self.family == "nasfpn":
            self._validate_nasfpn_block(where, block)
            return
        if not _is_int(block.expansion) or block.expansion <= 0:
            _fail(where, "expansion", f"must be a positive integer, got {block.expansion!r}")
        if block.merge not in MERGE_OPS:
            _fail(where, "merge", f"{block.merge!r} is not allowed; choose one of {MERGE_OPS}")
        if block.merge == "se" and len(block.inputs) != 2:
            _fail(where, "merge", f"'se' merges exactly 2 inputs, got {len(block.inputs)}")
        if block.kernel not in KERNEL_SIZES:
            _fail(where, "kernel", f"{block.kernel!r} is not allowed; choose one of "
                  f"{KERNEL_SIZES}")
        if self.family == "conn_search" and block.merge != "sum":
            _fail(where, "merge", f"family 'conn_search' merges by addition only, got "
                  f"{block.merge!r}; use merge 'sum'")
        if self.family != "conn_search" and len(block.inputs) != 2:
            _fail(where, "inputs", f"family {self.family!r} merges exactly 2 inputs, got "
                  f"{list(block.inputs)}; use family 'conn_search' for 3..{MAX_INPUTS}")
        if self.family == "no_expand" and block.expansion != self.channels:
            _fail(where, "expansion", f"family 'no_expand' needs expansion == channels "
                  f"({self.channels}), got {block.expansion}")

    def _validate_nasfpn_block(self, where: str, block: BlockSpec) -> None:
        if len(block.inputs) != 2:
            _fail(where, "inputs", f"family 'nasfpn' merges exactly 2 inputs, got "
                  f"{list(block.inputs)}")
        if block.expansion is not None:
            _fail(where, "expansion", f"family 'nasfpn' has no expansion (got "
                  f"{block.expansion!r}); omit the field")
        if block.kernel is not None:
            _fail(where, "kernel", f"family 'nasfpn' uses a fixed {NASFPN_KERNEL}x"
                  f"{NASFPN_KERNEL} conv, got {block.kernel!r}; omit the field")
        if block.merge not in NASFPN_MERGE_OPS:
            _fail(where, "merge", f"{block.merge!r} is not allowed in family 'nasfpn'; choose "
                  f"one of {NASFPN_MERGE_OPS}")

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "channels": self.channels, "repeats": self.repeats,
                "min_level": self.min_level, "max_level": self.max_level}
        # family fields only when not the default, so older JSON stays byte-identical
        if self.family != "mnasfpn":
            data["family"] = self.family
        if not self.sdo and self.family != "nasfpn":
            data["sdo"] = False
        if not self.separable:
            data["separable"] = False
        data["blocks"] = [b.to_dict() for b in self.blocks]
        return data

    def to_json(self) -> str:
        """Pretty JSON with one block per line, so diffs of architectures stay readable."""
        data = self.to_dict()
        blocks = ",\n".join("    " + json.dumps(b) for b in data.pop("blocks"))
        head = json.dumps(data, indent=2)[:-2]
        return f'{head},\n  "blocks": [\n{blocks}\n  ]\n}}'


    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MnasFPNSpec":
        fields = [f.name for f in dataclasses.fields(cls)]
        _check_keys("architecture", data, fields, ("blocks", "channels"))
        blocks = data["blocks"]
        if not isinstance(blocks, (list, tuple)):
            _fail("architecture", "blocks", f"expected a list of blocks, got {blocks!r}")
        kwargs = {k: v for k, v in data.items() if k != "blocks"}
        return cls(blocks=tuple(BlockSpec.from_dict(b, f"block {i}")
                                for i, b in enumerate(blocks)), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> "MnasFPNSpec":
        return cls.from_dict(parse_json(text, "architecture"))

    def replace(self, **changes: Any) -> "MnasFPNSpec":
        return dataclasses.replace(self, **changes)


CellSpec = MnasFPNSpec  # the family-neutral name


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Rounds a channel count the way slim/MobileNet do (never below 90% of value)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def scale_depth(spec: MnasFPNSpec, multiplier: float, name: str | None = None) -> MnasFPNSpec:
    """Applies a depth multiplier to C and every F, as the reference extractor does."""
    blocks: Sequence[BlockSpec] = [
        b if b.expansion is None else
        dataclasses.replace(b, expansion=make_divisible(b.expansion * multiplier))
        for b in spec.blocks]
    return spec.replace(blocks=tuple(blocks),
                        channels=make_divisible(spec.channels * multiplier),
                        name=spec.name if name is None else name)
