"""The MnasFPN search space (paper Table 2) as a sampler of valid architecture specs.

Per block: two distinct inputs among the cell inputs and earlier blocks, an output level,
an expansion F, a merge op (sum or SE) and a depthwise kernel; per cell: the width C.
Outputs are the last block at each level, so every level needs at least one block; a
draw that leaves a level without a block is redrawn (rejection keeps the distribution
uniform over valid cells).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mnas_tf.arch import BlockSpec, MnasFPNSpec


@dataclasses.dataclass(frozen=True)
class MnasFPNSpace:
    expansions: tuple[int, ...] = (16, 32, 64, 96, 128, 256, 512)
    channels: tuple[int, ...] = (16, 32, 48, 64, 80, 96)
    kernels: tuple[int, ...] = (3, 5, 7)
    merges: tuple[str, ...] = ("sum", "se")
    num_blocks: int = 5
    repeats: int = 4
    min_level: int = 3
    max_level: int = 6

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(range(self.min_level, self.max_level + 1))

    def sample(self, rng: np.random.Generator, max_tries: int = 1000) -> MnasFPNSpec:
        """One uniformly drawn valid architecture."""
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
