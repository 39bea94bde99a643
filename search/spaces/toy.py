"""A toy objective with a known optimum, for checking strategies without training.

The score of an architecture is its mean per-decision closeness to a hidden target
sequence (1 when equal, falling linearly with the index distance within each decision's
choices), so the optimum is exactly 1.0 at the target and partial credit is smooth enough
for a policy-gradient method to climb. Works on any object with the decision program
(a SearchSpace or a bare `mnas_tf.spaces.CellSpace`).
"""

from __future__ import annotations

import numpy as np


class ToyObjective:
    def __init__(self, space, seed: int = 0):
        self.space = space
        drawn = space.sample_decisions(np.random.default_rng(10_000 + seed))
        # specs are scored through encode(), which fills pruned blocks with the first
        # valid choice: the target is that canonical sequence, so its spec scores 1.0
        self.target_spec = space.decode(drawn)
        self.target = space.encode(self.target_spec)
        self._sizes = [len(space.kinds[s.kind]) for s in space.decode_steps(self.target)[1]]
        self.optimum = 1.0

    def score_decisions(self, decisions) -> float:
        if len(decisions) != len(self.target):
            return 0.0
        closeness = [1.0 - abs(d - t) / max(n - 1, 1)
                     for d, t, n in zip(decisions, self.target, self._sizes)]
        return float(np.mean(closeness))

    def score(self, spec) -> float:
        return self.score_decisions(self.space.encode(spec))
