"""The MnasFPN-family spaces (mnasfpn, no_expand, conn_search, nasfpnlite_s) as
SearchSpaces: a thin adapter over `mnas_tf.spaces.CellSpace`, which stays in mnas_tf so the
latency table can enumerate it without importing `search/`."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from mnas_tf.arch import MnasFPNSpec
from mnas_tf.spaces import PAPER_CARDINALITY, CellSpace, canonical_dict
from search.spaces.base import SearchSpace


class CellSearchSpace(SearchSpace):
    """Delegates the decision program to the CellSpace; attributes it does not define
    (max_length, levels, family, ...) are the CellSpace's."""

    def __init__(self, cell_space: CellSpace):
        self.cell_space = cell_space
        self.name = cell_space.name

    def __getattr__(self, attr: str) -> Any:
        cell = self.__dict__.get("cell_space")
        if cell is None:  # not set yet (unpickling)
            raise AttributeError(attr)
        return getattr(cell, attr)

    def __eq__(self, other) -> bool:
        return isinstance(other, CellSearchSpace) and other.cell_space == self.cell_space

    def __hash__(self) -> int:
        return hash(self.cell_space)

    def __repr__(self) -> str:
        return f"CellSearchSpace({self.cell_space!r})"

    # ------------------------------------------------------------- the program
    @property
    def kinds(self) -> dict[str, tuple]:
        return self.cell_space.kinds

    def decision_names(self) -> list[str]:
        return self.cell_space.decision_names()

    def run(self, choose):
        return self.cell_space.run(choose)

    def decode_steps(self, decisions: Sequence[int]):
        return self.cell_space.decode_steps(decisions)

    def encode(self, spec: MnasFPNSpec) -> list[int]:
        return self.cell_space.encode(spec)

    def sample_decisions(self, rng: np.random.Generator) -> list[int]:
        return self.cell_space.sample_decisions(rng)

    def _finish(self, spec: MnasFPNSpec) -> MnasFPNSpec:
        return spec.pruned()

    # ------------------------------------------------------------- points
    def sample(self, rng: np.random.Generator) -> MnasFPNSpec:
        return self.cell_space.sample(rng)

    def key(self, spec: MnasFPNSpec) -> dict:
        return canonical_dict(spec)

    def spec(self, arch: dict) -> MnasFPNSpec:
        return MnasFPNSpec.from_dict(arch)

    # ------------------------------------------------------------- size
    def cardinality(self, ordered_inputs: bool = False) -> int:
        return self.cell_space.cardinality(ordered_inputs=ordered_inputs)

    def describe(self) -> dict:
        """The space's size and shape beside the paper's Table 2 (`search.space --json`)."""
        space = self.cell_space
        cardinality = space.cardinality()
        ordered = space.cardinality(ordered_inputs=True)
        shortest = []
        space.run(lambda kind, name, valid: shortest.append(valid[0]) or valid[0])
        paper = PAPER_CARDINALITY.get(space.name)
        return {
            "space": space.name, "name": space.name, "family": space.family,
            "cardinality": float(cardinality), "log10_cardinality": math.log10(cardinality),
            "paper_cardinality": paper,
            "log10_ratio_to_paper": None if paper is None else math.log10(cardinality / paper),
            "cardinality_ordered_inputs": float(ordered),
            "log10_ratio_to_paper_ordered_inputs":
                None if paper is None else math.log10(ordered / paper),
            "decisions": space.max_length if "num_inputs" in space.kinds else len(shortest),
            "decisions_min": len(shortest),
            "intermediate_blocks": space.intermediate_blocks,
            "output_blocks": len(space.levels), "levels": list(space.levels),
            "choices": {kind: list(values) for kind, values in space.kinds.items()
                        if kind != "input"},
            "max_inputs": space.max_inputs, "formula": space.cardinality_formula(),
        }
