"""Regularized (aging) evolution, Real et al. 2019: the strongest simple NAS baseline.

The population is the last P finished children (the oldest dies as each new one lands);
a child is a mutation of the best of S members drawn at random. Until P children exist,
proposals are random. Everything is read from the store, so a resumed search continues
with the population it had.
"""

from __future__ import annotations

from search.store import DONE
from search.strategies.base import MAX_DRAWS, Proposal, Strategy, StrategyError


class RegularizedEvolution(Strategy):
    def _population(self) -> list:
        scored = [t for t in self.store.trials(DONE) if t.reward is not None]
        scored.sort(key=lambda t: (t.finished or 0.0, t.id))
        return scored[-self.config.regularized_evolution.population:]

    def propose(self, rng):
        cfg = self.config.regularized_evolution
        if sum(self.store.counts().values()) < cfg.population:
            return Proposal(self.random_feasible(rng), {"origin": "random"})
        population = self._population()
        if len(population) < cfg.sample_size:
            return None  # the first P are still in flight: wait for them
        unary = [v for v in self.space.variations() if v.arity == 1]
        for _ in range(MAX_DRAWS):
            picks = rng.choice(len(population), cfg.sample_size, replace=False)
            parent = max((population[int(i)] for i in picks), key=lambda t: (t.reward, -t.id))
            variation = unary[int(rng.integers(len(unary)))]
            child = variation.apply([self.space.spec(parent.arch)], rng, cfg.mutation_prob)
            if child is not None and self.feasible(child):
                return Proposal(child, {"origin": variation.name, "parent": parent.id})
        raise StrategyError(f"no mutation passed the constraint in {MAX_DRAWS} attempts; "
                            f"widen constraint.tolerance")

    def status(self) -> str:
        population = self._population()
        if not population:
            return "population 0"
        best = max(t.reward for t in population)
        return f"population {len(population)}, its best {best:.4f}"
