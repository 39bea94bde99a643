"""MnasFPN-family search spaces (the MnasFPN paper's Table 2) as decision sequences.

The cell layout is the paper's: "All search spaces allow 5 internal blocks per cell"
(§4.1), and "although the search allows for a maximum of 5 intermediate blocks, only one
was chosen" (Fig. 2). So a cell is `intermediate_blocks` searchable blocks (inputs, level,
merge, F, kernel, as the family allows) followed by one output block per pyramid level in
level order (level fixed; inputs, merge, F and kernel searched). That is also how Google
coded the published cell: block 0 is its one intermediate block, blocks 1-4 the outputs at
levels 3..6 (the spec's "last block at each level" rule picks exactly those). Intermediate
blocks no output reaches are pruned: `decode` returns the pruned spec, the one that is
built, priced and counted.

A space is a small program that asks for one decision at a time: each decision has a
*kind* (the controller has one softmax head per kind) and the subset of that kind's
choices valid given the decisions already made, so every sequence decodes to a valid
spec. A block reads distinct earlier nodes, chosen as a set in ascending order ("we search
for which two input features to merge", §3.3): one sequence per input set, for every merge.

Families: `mnasfpn` (2 inputs, F, merge sum/SE, kernel 3/5/7, C), `no_expand` (F = C),
`conn_search` (2..4 inputs merged by sum), `nasfpnlite_s` (NAS-FPN blocks with separable
convs, C = 64, merge sum/attention, NAS-FPN's recycling of unconsumed nodes).
`cardinality()` counts the sequences exactly (see `cardinality_formula`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np

from mnas_tf.arch import MnasFPNSpec

Chooser = Callable[[str, str, Sequence[int]], int]
SPACE_LAYOUT = 2  # 1: five blocks in all; 2: intermediate blocks + one output per level
SYMMETRIC_MERGES = ("sum",)  # input order does not change what the block computes


def canonical_dict(spec: MnasFPNSpec) -> dict:
    """The spec as data with unreached blocks pruned, its name dropped and the inputs of
    symmetric merges sorted: two specs that build the same detector compare (and hash)
    equal, so they share one trial and are never trained twice."""
    data = spec.pruned().to_dict()
    data.pop("name", None)
    for block in data["blocks"]:
        if block.get("merge") in SYMMETRIC_MERGES:
            block["inputs"] = sorted(block["inputs"])
    return data


class DecisionError(ValueError):
    """A decision sequence that does not decode, or a spec that is not in the space."""


@dataclasses.dataclass(frozen=True)
class Step:
    """One decision as taken: its kind, its name in the cell, the valid choices, the pick."""

    kind: str
    name: str
    valid: tuple[int, ...]
    choice: int


def replay(run: Callable[[Chooser], object], space: str, decisions: Sequence[int]):
    """(what `run` returns, the steps taken) when a space's program is fed `decisions`;
    DecisionError names the first decision that does not fit, or a length mismatch. The
    one decoder of every decision-program space."""
    steps: list[Step] = []

    def choose(kind, name, valid):
        i = len(steps)
        if i >= len(decisions):
            raise DecisionError(f"space {space!r}: the sequence ends at decision {i} "
                                f"({name}); it needs more decisions")
        choice = decisions[i]
        if isinstance(choice, bool) or not isinstance(choice, (int, np.integer)) \
                or int(choice) not in valid:
            raise DecisionError(f"space {space!r}: decision {i} ({name}) is "
                                f"{choice!r}, valid here are {list(valid)}")
        steps.append(Step(kind, name, tuple(valid), int(choice)))
        return int(choice)

    result = run(choose)
    if len(steps) != len(decisions):
        raise DecisionError(f"space {space!r}: {len(decisions)} decisions given, the "
                            f"program uses {len(steps)}")
    return result, steps


@dataclasses.dataclass(frozen=True)
class CellSpace:
    """`intermediate_blocks` free blocks, then one output block per level min..max."""

    name: str = "mnasfpn"
    family: str = "mnasfpn"
    expansions: tuple[int, ...] = (16, 32, 64, 96, 128, 256, 512)
    channels: tuple[int, ...] = (16, 32, 48, 64, 80, 96)
    kernels: tuple[int, ...] = (3, 5, 7)
    merges: tuple[str, ...] = ("sum", "se")
    max_inputs: int = 2
    intermediate_blocks: int = 5
    repeats: int = 4
    min_level: int = 3
    max_level: int = 6

    def __post_init__(self):
        for field in ("expansions", "channels", "kernels", "merges"):
            value = getattr(self, field)
            if isinstance(value, (str, int)) or not isinstance(value, Sequence) or not value:
                raise ValueError(f"space {self.name!r}: {field} must be a non-empty list, got "
                                 f"{value!r}")
            object.__setattr__(self, field, tuple(value))
        for field in ("max_inputs", "intermediate_blocks", "repeats", "min_level",
                      "max_level"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"space {self.name!r}: {field} must be an integer, got "
                                 f"{value!r}")
        if self.intermediate_blocks < 0:
            raise ValueError(f"space {self.name!r}: intermediate_blocks must be >= 0")
        if not 2 <= self.max_inputs <= 4:
            raise ValueError(f"space {self.name!r}: max_inputs must be 2..4")
        if self.max_level <= self.min_level:
            raise ValueError(f"space {self.name!r}: need min_level < max_level")

    # ----------------------------------------------------------------- structure
    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(range(self.min_level, self.max_level + 1))

    @property
    def num_blocks(self) -> int:
        """Blocks in a cell before pruning: the intermediate ones plus one per level."""
        return self.intermediate_blocks + len(self.levels)

    @property
    def kinds(self) -> dict[str, tuple]:
        """Decision kind -> its choices (one softmax head each in the controller)."""
        num_nodes = len(self.levels) + self.num_blocks - 1
        kinds = {"channels": self.channels, "level": self.levels, "merge": self.merges,
                 "input": tuple(range(num_nodes))}
        if self.max_inputs > 2:
            kinds["num_inputs"] = tuple(range(2, self.max_inputs + 1))
        if self.family not in ("no_expand", "nasfpn"):
            kinds["expansion"] = self.expansions
        if self.family != "nasfpn":
            kinds["kernel"] = self.kernels
        return kinds

    @property
    def max_length(self) -> int:
        kinds = self.kinds
        per_block = 1 + self.max_inputs + ("num_inputs" in kinds) + \
            ("expansion" in kinds) + ("kernel" in kinds)
        return 1 + self.num_blocks * per_block + self.intermediate_blocks  # + their levels

    def block_names(self) -> list[str]:
        """Decision-name prefix of each block: `mid0..`, then `out3..` by level."""
        return ([f"mid{i}" for i in range(self.intermediate_blocks)]
                + [f"out{level}" for level in self.levels])

    def decision_names(self) -> list[str]:
        """Every decision name a sequence of this space can contain, in program order
        (the policy keeps a learned prior per name)."""
        kinds, names = self.kinds, ["channels"]
        for i, prefix in enumerate(self.block_names()):
            names += [f"{prefix}.level"] if i < self.intermediate_blocks else []
            names.append(f"{prefix}.merge")
            names += [f"{prefix}.num_inputs"] if "num_inputs" in kinds else []
            names += [f"{prefix}.input{k}" for k in range(self.max_inputs)]
            names += [f"{prefix}.{kind}" for kind in ("expansion", "kernel") if kind in kinds]
        return names

    # ----------------------------------------------------------------- the program
    def run(self, choose: Chooser) -> MnasFPNSpec:
        """Asks `choose(kind, name, valid_indices)` for every decision; returns the whole
        (unpruned) spec: intermediate blocks first, then the outputs in level order."""
        kinds = self.kinds
        pick = lambda kind, name, valid: kinds[kind][choose(kind, name, tuple(valid))]
        channels = pick("channels", "channels", range(len(self.channels)))
        blocks = []
        for i, prefix in enumerate(self.block_names()):
            if i < self.intermediate_blocks:
                level = pick("level", f"{prefix}.level", range(len(self.levels)))
            else:
                level = self.levels[i - self.intermediate_blocks]
            merge = pick("merge", f"{prefix}.merge", range(len(self.merges)))
            nodes = len(self.levels) + i
            degree = 2
            if "num_inputs" in kinds:
                degree = pick("num_inputs", f"{prefix}.num_inputs",
                              [j for j, d in enumerate(kinds["num_inputs"]) if d <= nodes])
            inputs: list[int] = []
            for k in range(degree):  # a set, ascending: one sequence per choice of inputs
                low = inputs[-1] + 1 if inputs else 0
                inputs.append(pick("input", f"{prefix}.input{k}",
                                   range(low, nodes - (degree - k - 1))))
            block = {"inputs": inputs, "level": level, "merge": merge}
            if self.family == "no_expand":
                block["expansion"] = channels
            elif self.family != "nasfpn":
                block["expansion"] = pick("expansion", f"{prefix}.expansion",
                                          range(len(self.expansions)))
            if self.family != "nasfpn":
                block["kernel"] = pick("kernel", f"{prefix}.kernel", range(len(self.kernels)))
            blocks.append(block)
        return self._spec(channels, blocks)

    def _spec(self, channels: int, blocks: list[dict]) -> MnasFPNSpec:
        data = {"name": f"{self.name}_sample", "channels": channels, "repeats": self.repeats,
                "min_level": self.min_level, "max_level": self.max_level, "blocks": blocks}
        if self.family != "mnasfpn":
            data["family"] = self.family
        return MnasFPNSpec.from_dict(data)

    # ----------------------------------------------------------------- codecs
    def decode_steps(self, decisions: Sequence[int]) -> tuple[MnasFPNSpec, list[Step]]:
        """The pruned spec of a decision sequence and the steps taken (kinds, valid sets)."""
        spec, steps = replay(self.run, self.name, decisions)
        return spec.pruned(), steps

    def decode(self, decisions: Sequence[int]) -> MnasFPNSpec:
        return self.decode_steps(decisions)[0]

    def encode(self, spec: MnasFPNSpec) -> list[int]:
        """A decision sequence that decodes to `spec` (up to the order of sum inputs).

        A spec with fewer intermediate blocks than the space gets unreached filler blocks
        (the first valid choice everywhere), which decoding prunes again. DecisionError
        names why a spec is not in the space."""
        values = self._values(spec)
        kinds = self.kinds
        out: list[int] = []

        def choose(kind, name, valid):
            if name not in values:  # a filler block: nothing reads it
                out.append(valid[0])
                return valid[0]
            value = values[name]
            index = kinds[kind].index(value) if value in kinds[kind] else None
            if index is None or index not in valid:
                raise DecisionError(f"space {self.name!r}: {name} = {value!r} is not a choice "
                                    f"of this space here (choices: {list(kinds[kind])})")
            out.append(index)
            return index

        decoded, wanted = canonical_dict(self.run(choose)), canonical_dict(spec)
        if decoded != wanted:
            fields = sorted(k for k in set(decoded) | set(wanted)
                            if decoded.get(k) != wanted.get(k)) or ["blocks"]
            raise DecisionError(f"space {self.name!r} cannot express this spec: it differs in "
                                f"{', '.join(fields)} (the space's cells have repeats "
                                f"{self.repeats}, sdo on, separable convs)")
        return out

    def _values(self, spec: MnasFPNSpec) -> dict:
        num_levels = len(self.levels)
        if (spec.min_level, spec.max_level) != (self.min_level, self.max_level):
            raise DecisionError(f"space {self.name!r} covers levels {self.min_level}.."
                                f"{self.max_level}, the spec {spec.min_level}..{spec.max_level}")
        if spec.family != self.family:
            raise DecisionError(f"space {self.name!r} holds family {self.family!r} cells, the "
                                f"spec is family {spec.family!r}")
        outputs = spec.blocks[-num_levels:]
        if len(spec.blocks) < num_levels or [b.level for b in outputs] != list(self.levels):
            raise DecisionError(
                f"space {self.name!r}: the last {num_levels} blocks must be the cell outputs "
                f"at levels {self.min_level}..{self.max_level} in that order, got levels "
                f"{[b.level for b in outputs]}")
        inner = spec.blocks[:-num_levels]
        pad = self.intermediate_blocks - len(inner)
        if pad < 0:
            raise DecisionError(f"space {self.name!r} allows {self.intermediate_blocks} "
                                f"intermediate blocks, the spec has {len(inner)}")
        if pad and spec.family == "nasfpn":
            raise DecisionError(f"space {self.name!r}: NAS-FPN cells recycle every unconsumed "
                                f"node, so a cell of this space has exactly "
                                f"{self.intermediate_blocks} intermediate blocks, the spec "
                                f"{len(inner)}")
        first_output = num_levels + len(inner)
        shift = lambda n: n + pad if n >= first_output else n
        values = {"channels": spec.channels}
        names = self.block_names()
        placed = list(zip(names[:len(inner)], inner)) + list(zip(names[-num_levels:], outputs))
        for prefix, b in placed:
            values.update({f"{prefix}.level": b.level, f"{prefix}.merge": b.merge,
                           f"{prefix}.num_inputs": len(b.inputs),
                           f"{prefix}.expansion": b.expansion, f"{prefix}.kernel": b.kernel})
            values.update({f"{prefix}.input{k}": n
                           for k, n in enumerate(sorted(shift(n) for n in b.inputs))})
        return values

    def sample_decisions(self, rng: np.random.Generator) -> list[int]:
        """Uniform over the valid choices at every step (not uniform over detectors)."""
        out: list[int] = []
        self.run(lambda kind, name, valid: out.append(int(rng.choice(valid))) or out[-1])
        return out

    def sample(self, rng: np.random.Generator) -> MnasFPNSpec:
        """One random architecture of the space (pruned), as the random strategy and the
        latency table's calibration and fidelity draws use."""
        return self.decode(self.sample_decisions(rng))

    # ----------------------------------------------------------------- size
    def wirings(self, nodes: int) -> int:
        """Input sets a block can read from `nodes` earlier nodes."""
        return sum(math.comb(nodes, d) for d in range(2, min(self.max_inputs, nodes) + 1))

    def cardinality(self, ordered_inputs: bool = False) -> int:
        """Number of distinct decision sequences (see `cardinality_formula`). With
        `ordered_inputs`, the count a space with ordered input tuples would have (the
        other counting convention the README compares against the paper's Table 2)."""
        options = len(self.merges)
        if "expansion" in self.kinds:
            options *= len(self.expansions)
        if "kernel" in self.kinds:
            options *= len(self.kernels)
        total = len(self.channels)
        for i in range(self.num_blocks):
            levels = len(self.levels) if i < self.intermediate_blocks else 1
            nodes = len(self.levels) + i
            wirings = (sum(math.perm(nodes, d) for d in range(2, min(self.max_inputs, nodes) + 1))
                       if ordered_inputs else self.wirings(nodes))
            total *= levels * options * wirings
        return total

    def cardinality_formula(self) -> str:
        return ("|C| x prod_{i<I} [ L x W(L+i) x |M||F||K| ] x prod_{j<L} [ W(L+I+j) x "
                "|M||F||K| ],  W(n) = sum_{d=2..D} C(n, d) input sets; I intermediate "
                "blocks (level searched), L output blocks (level fixed)")


def _family(name: str, family: str, **fixed) -> Callable[..., CellSpace]:
    return lambda **overrides: CellSpace(**{"name": name, "family": family, **fixed,
                                            **overrides})


SPACES: dict[str, Callable[..., CellSpace]] = {
    "mnasfpn": _family("mnasfpn", "mnasfpn"),
    "no_expand": _family("no_expand", "no_expand"),
    "conn_search": _family("conn_search", "conn_search", merges=("sum",), max_inputs=4),
    "nasfpnlite_s": _family("nasfpnlite_s", "nasfpn", channels=(64,), kernels=(3,),
                            merges=("sum", "attention")),
}

PAPER_CARDINALITY = {"nasfpnlite_s": 2e22, "no_expand": 2.4e27, "mnasfpn": 1e31,
                     "conn_search": 3e42}


def MnasFPNSpace(**overrides) -> CellSpace:
    """The paper's MnasFPN space (Table 2): F, C, kernels, sum/SE, in-degree 2."""
    return SPACES["mnasfpn"](**overrides)


def get_space(name: str, **overrides) -> CellSpace:
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}; valid spaces are "
                         f"{', '.join(SPACES)}")
    valid = [f.name for f in dataclasses.fields(CellSpace) if f.name != "name"]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"space {name!r}: unknown setting(s) {', '.join(unknown)}; valid "
                         f"settings are {', '.join(valid)}")
    return SPACES[name](**overrides)
