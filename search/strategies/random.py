"""Random search: uniform samples of the space (the baseline every NAS result must beat)."""

from __future__ import annotations

from search.strategies.base import Proposal, Strategy


class RandomSearch(Strategy):
    def propose(self, rng):
        return Proposal(self.random_feasible(rng), {"origin": "random"})
