"""Search spaces as sequences of categorical decisions (the MnasFPN paper's Table 2).

A space is a small program that asks for one decision at a time: each decision has a
*kind* (the controller has one softmax head per kind) and the subset of that kind's
choices that is valid given the decisions already made. So every decision sequence
decodes to a spec that validates; nothing is rejected after the fact:
- a block reads earlier nodes only, and distinct ones (ascending where the merge is
  symmetric, so one cell has exactly one sequence);
- once the remaining blocks are just enough to give every pyramid level an output, the
  level decision offers only the levels still missing.

Spaces: `mnasfpn` (2 inputs, F, merge sum/SE, kernel 3/5/7, C), `no_expand` (F = C),
`conn_search` (2..4 inputs merged by sum), `nasfpnlite_s` (NAS-FPN cells with separable
convs, C = 64, merge sum/attention). `cardinality()` counts the sequences exactly: see
`cardinality_formula`. The MnasFPN space also keeps the rejection sampler that the latency
table's fidelity check draws with (uniform over valid cells).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional, Sequence

import numpy as np

from mnas_tf.arch import ArchitectureError, BlockSpec, MnasFPNSpec

Chooser = Callable[[str, str, Sequence[int]], int]
SYMMETRIC_MERGES = ("sum",)  # input order does not matter; SE and attention gate one by one


def canonical_dict(spec: MnasFPNSpec) -> dict:
    """The spec as data with its name dropped and the inputs of symmetric merges sorted, so
    two specs that compute the same function compare (and hash) equal."""
    data = spec.to_dict()
    data.pop("name", None)
    for block in data["blocks"]:
        if block.get("merge") in SYMMETRIC_MERGES:
            block["inputs"] = sorted(block["inputs"])
    return data


class DecisionError(ValueError):
    """A decision sequence that does not decode (wrong length or an invalid choice)."""


@dataclasses.dataclass(frozen=True)
class Step:
    """One decision as taken: its kind, its name in the cell, the valid choices, the pick."""

    kind: str
    name: str
    valid: tuple[int, ...]
    choice: int


def surjections(n: int, k: int) -> int:
    """Ways to give n labelled blocks one of k levels so that every level is used."""
    return sum((-1) ** j * math.comb(k, j) * (k - j) ** n for j in range(k + 1))


@dataclasses.dataclass(frozen=True)
class CellSpace:
    """A cell of `num_blocks` blocks over levels min..max, with the family's options."""

    name: str = "mnasfpn"
    family: str = "mnasfpn"
    expansions: tuple[int, ...] = (16, 32, 64, 96, 128, 256, 512)
    channels: tuple[int, ...] = (16, 32, 48, 64, 80, 96)
    kernels: tuple[int, ...] = (3, 5, 7)
    merges: tuple[str, ...] = ("sum", "se")
    max_inputs: int = 2
    num_blocks: int = 5
    repeats: int = 4
    min_level: int = 3
    max_level: int = 6

    def __post_init__(self):
        if self.num_blocks < len(self.levels):
            raise ValueError(f"space {self.name!r}: {self.num_blocks} blocks cannot give each "
                             f"of {len(self.levels)} levels an output")
        if not 2 <= self.max_inputs <= 4:
            raise ValueError(f"space {self.name!r}: max_inputs must be 2..4")

    # ----------------------------------------------------------------- structure
    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(range(self.min_level, self.max_level + 1))

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
        per_block = 2 + self.max_inputs + ("num_inputs" in self.kinds) + \
            ("expansion" in self.kinds) + ("kernel" in self.kinds)
        return ("channels" in self.kinds) + self.num_blocks * per_block

    # ----------------------------------------------------------------- the program
    def run(self, choose: Chooser) -> MnasFPNSpec:
        """Asks `choose(kind, name, valid_indices)` for every decision; returns the spec."""
        kinds = self.kinds
        pick = lambda kind, name, valid: kinds[kind][choose(kind, name, tuple(valid))]
        channels = pick("channels", "channels", range(len(self.channels)))
        num_levels = len(self.levels)
        uncovered = set(self.levels)
        blocks = []
        for i in range(self.num_blocks):
            left_after = self.num_blocks - i - 1
            level_ok = [j for j, lvl in enumerate(self.levels)
                        if len(uncovered - {lvl}) <= left_after]
            level = pick("level", f"block{i}.level", level_ok)
            uncovered.discard(level)
            merge = pick("merge", f"block{i}.merge", range(len(self.merges)))
            nodes = num_levels + i
            degree = 2
            if "num_inputs" in kinds:
                degree = pick("num_inputs", f"block{i}.num_inputs",
                              [j for j, d in enumerate(kinds["num_inputs"]) if d <= nodes])
            inputs: list[int] = []
            for k in range(degree):
                if merge in SYMMETRIC_MERGES:  # symmetric: ascending, one sequence per input set
                    low = inputs[-1] + 1 if inputs else 0
                    valid = range(low, nodes - (degree - k - 1))
                else:  # the gate's order matters: any distinct node
                    valid = [n for n in range(nodes) if n not in inputs]
                inputs.append(pick("input", f"block{i}.input{k}", valid))
            block = {"inputs": inputs, "level": level, "merge": merge}
            if self.family == "no_expand":
                block["expansion"] = channels
            elif self.family != "nasfpn":
                block["expansion"] = pick("expansion", f"block{i}.expansion",
                                          range(len(self.expansions)))
            if self.family != "nasfpn":
                block["kernel"] = pick("kernel", f"block{i}.kernel", range(len(self.kernels)))
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
        """The spec of a decision sequence and the steps taken (kinds, valid sets)."""
        steps: list[Step] = []
        position = iter(range(len(decisions) + 1))

        def choose(kind, name, valid):
            i = next(position)
            if i >= len(decisions):
                raise DecisionError(f"space {self.name!r}: the sequence ends at decision {i} "
                                    f"({name}); it needs more decisions")
            choice = int(decisions[i])
            if choice not in valid:
                raise DecisionError(f"space {self.name!r}: decision {i} ({name}) is {choice}, "
                                    f"valid here are {list(valid)}")
            steps.append(Step(kind, name, tuple(valid), choice))
            return choice

        spec = self.run(choose)
        if len(steps) != len(decisions):
            raise DecisionError(f"space {self.name!r}: {len(decisions)} decisions given, the "
                                f"cell uses {len(steps)}")
        return spec, steps

    def decode(self, decisions: Sequence[int]) -> MnasFPNSpec:
        return self.decode_steps(decisions)[0]

    def encode(self, spec: MnasFPNSpec) -> list[int]:
        """The decision sequence of a spec of this space (its inverse is `decode`)."""
        values = self._values(spec)
        kinds = self.kinds
        out: list[int] = []

        def choose(kind, name, valid):
            value = values.get(name)
            index = kinds[kind].index(value) if value in kinds[kind] else None
            if index is None or index not in valid:
                raise DecisionError(f"space {self.name!r}: {name} = {value!r} is not a choice "
                                    f"of this space here")
            out.append(index)
            return index

        decoded = self.run(choose)
        if canonical_dict(decoded) != canonical_dict(spec):
            raise DecisionError(f"space {self.name!r} cannot express this spec (repeats, "
                                f"levels or family differ)")
        return out

    def _values(self, spec: MnasFPNSpec) -> dict:
        if len(spec.blocks) != self.num_blocks:
            raise DecisionError(f"space {self.name!r} has {self.num_blocks} blocks, the spec "
                                f"{len(spec.blocks)}")
        values = {"channels": spec.channels}
        for i, b in enumerate(spec.blocks):
            values.update({f"block{i}.level": b.level, f"block{i}.merge": b.merge,
                           f"block{i}.num_inputs": len(b.inputs),
                           f"block{i}.expansion": b.expansion, f"block{i}.kernel": b.kernel})
            inputs = sorted(b.inputs) if b.merge in SYMMETRIC_MERGES else b.inputs
            values.update({f"block{i}.input{k}": n for k, n in enumerate(inputs)})
        return values

    def sample_decisions(self, rng: np.random.Generator) -> list[int]:
        """Uniform over the valid choices at every step (not uniform over cells)."""
        out: list[int] = []
        self.run(lambda kind, name, valid: out.append(int(rng.choice(valid))) or out[-1])
        return out

    # ----------------------------------------------------------------- size
    def cardinality(self) -> int:
        """Number of distinct decision sequences = distinct cells (see the formula)."""
        total = len(self.channels) * surjections(self.num_blocks, len(self.levels))
        symmetric = sum(1 for m in self.merges if m in SYMMETRIC_MERGES)
        ordered = len(self.merges) - symmetric
        per_block_options = 1
        if "expansion" in self.kinds:
            per_block_options *= len(self.expansions)
        if "kernel" in self.kinds:
            per_block_options *= len(self.kernels)
        for i in range(self.num_blocks):
            n = len(self.levels) + i
            wirings = sum(symmetric * math.comb(n, d) + ordered * math.perm(n, d)
                          for d in range(2, min(self.max_inputs, n) + 1))
            total *= wirings * per_block_options
        return total

    def cardinality_formula(self) -> str:
        return ("|C| x surj(B, L) x prod_i [ sum_{d=2..D} (n_sum*C(n_i,d) + n_ordered*P(n_i,d))"
                " x |F| x |K| ],  n_i = L + i nodes readable by block i; surj = level "
                "assignments that give every level an output")

    # ----------------------------------------------------------------- rejection sampler
    def sample(self, rng: np.random.Generator, max_tries: int = 1000) -> MnasFPNSpec:
        """One valid architecture, uniform over valid cells (two ordered inputs per block,
        levels redrawn until every level has a block). The latency table's fidelity and
        calibration draws use this; the controller uses decision sequences instead."""
        for _ in range(max_tries):
            blocks = []
            num_levels = len(self.levels)
            for i in range(self.num_blocks):
                inputs = rng.choice(num_levels + i, size=2, replace=False)
                blocks.append(BlockSpec(
                    inputs=tuple(int(n) for n in inputs),
                    level=int(rng.choice(self.levels)),
                    expansion=int(rng.choice(self.expansions)),
                    merge=str(rng.choice(self.merges)),
                    kernel=int(rng.choice(self.kernels))))
            if {b.level for b in blocks} == set(self.levels):
                return MnasFPNSpec(blocks=tuple(blocks), channels=int(rng.choice(self.channels)),
                                   repeats=self.repeats, min_level=self.min_level,
                                   max_level=self.max_level, name="sampled")
        raise RuntimeError("could not draw a valid architecture; the space is too constrained")


def MnasFPNSpace(**overrides) -> CellSpace:
    """The paper's MnasFPN space (Table 2): F, C, kernels, sum/SE, in-degree 2."""
    return CellSpace(**{"name": "mnasfpn", **overrides})


SPACES: dict[str, Callable[..., CellSpace]] = {
    "mnasfpn": MnasFPNSpace,
    "no_expand": lambda **o: CellSpace(**{"name": "no_expand", "family": "no_expand", **o}),
    "conn_search": lambda **o: CellSpace(**{"name": "conn_search", "family": "conn_search",
                                            "merges": ("sum",), "max_inputs": 4, **o}),
    "nasfpnlite_s": lambda **o: CellSpace(**{"name": "nasfpnlite_s", "family": "nasfpn",
                                             "channels": (64,), "kernels": (3,),
                                             "merges": ("sum", "attention"), **o}),
}

PAPER_CARDINALITY = {"nasfpnlite_s": 2e22, "no_expand": 2.4e27, "mnasfpn": 1e31,
                     "conn_search": 3e42}


def get_space(name: str, **overrides) -> CellSpace:
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}; valid spaces are "
                         f"{', '.join(SPACES)}")
    try:
        return SPACES[name](**overrides)
    except TypeError as e:
        fields = [f.name for f in dataclasses.fields(CellSpace) if f.name not in ("name",)]
        raise ValueError(f"space {name!r}: {e}; valid settings are {', '.join(fields)}") \
            from None
