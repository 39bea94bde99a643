"""Evolutionary search: MSNAS Algorithm 1, generalised to every space.

Iteration 0 is P random architectures that pass Select (the constraint). Iteration t makes
children of pop_{t-1} with every variation the space offers (MSNAS: crossover and
mutation of encoder strides and of feature strides; MnasFPN family: decision-level mutate
and crossover) for at most M attempts or until P children pass Select, adds R random
children that pass Select, scores them, and keeps Top-P of pop_t and pop_{t-1}. Children
are new architectures only (SPOS-style de-duplication), so none is scored twice.

Iteration t's candidates depend only on pop_{t-1}, the architectures seen before t and an
RNG seeded by (seed, t); the population is saved in the store when an iteration closes.
So a resumed search regenerates exactly the same candidates and reruns only the ones that
had not finished.
"""

from __future__ import annotations

import json

import numpy as np

from search.store import DONE, FAILED
from search.strategies.base import Proposal, Strategy, StrategyError

STATE = "evolution"


class Evolution(Strategy):
    def restore(self) -> None:
        state = self.store.get_state(STATE)
        self.population = json.loads(state[0]) if state else []
        self.t = state[1]["iteration"] + 1 if state else 0
        # per closed iteration: children made by variation, the attempts spent, random ones
        self.children = list(state[1].get("children", [])) if state else []
        self._plan = None
        self._attempts = 0

    # ------------------------------------------------------------ candidates
    def _trials_of(self, t: int) -> list:
        return [tr for tr in self.store.trials() if tr.extra.get("iteration") == t]

    def candidates(self, t: int) -> list:
        """(spec, origin) of iteration t; deterministic given pop_{t-1} and (seed, t)."""
        cfg = self.config.evolution
        rng = np.random.default_rng([self.config.seed, t])
        taken = {tr.arch_hash for tr in self.store.trials()
                 if tr.extra.get("iteration", -1) < t}
        out: list = []

        def offer(spec, origin):
            if spec is None or len(out) >= cfg.population or not self.feasible(spec):
                return
            key = self.space.arch_hash(spec)
            if key not in taken:
                taken.add(key)
                out.append((spec, origin))

        if t == 0:
            for _ in range(cfg.population):
                spec = self.random_feasible(rng, taken)
                taken.add(self.space.arch_hash(spec))
                out.append((spec, "random"))
            return out
        parents = [self.space.spec(p["arch"]) for p in self.population]
        variations = self.space.variations()
        self._attempts = 0
        for _ in range(cfg.max_attempts if parents else 0):
            if len(out) >= cfg.population:
                break
            self._attempts += 1
            a = parents[int(rng.integers(len(parents)))]
            b = parents[int(rng.integers(len(parents)))]
            for v in variations:
                offer(v.apply([a, b][:v.arity], rng, cfg.mutation_prob), v.name)
        for _ in range(cfg.random_children):  # R random children that pass Select
            try:
                spec = self.random_feasible(rng, taken)
            except StrategyError:
                break
            taken.add(self.space.arch_hash(spec))
            out.append((spec, "random"))
        return out

    # ------------------------------------------------------------ the loop
    def propose(self, rng):
        if self.exhausted():
            return None
        if self._plan is None:
            self._plan = self.candidates(self.t)
        have = {tr.arch_hash for tr in self._trials_of(self.t)}
        for spec, origin in self._plan:
            if self.space.arch_hash(spec) not in have:
                return Proposal(spec, {"iteration": self.t, "origin": origin})
        return None  # every candidate of this iteration is out: wait for its results

    def observe(self, final: bool = False) -> None:
        """Closes every iteration whose candidates have all finished."""
        while not self.exhausted():
            if self._plan is None:
                self._plan = self.candidates(self.t)
            trials = self._trials_of(self.t)
            if len(trials) < len(self._plan) or any(
                    tr.status not in (DONE, FAILED) for tr in trials):
                return
            self._close(self.t, trials)
            self.t += 1
            self._plan = None

    def _close(self, t: int, trials: list) -> None:
        scored = [{"arch": tr.arch, "hash": tr.arch_hash, "score": tr.reward,
                   "madds": tr.madds, "trial": tr.id, "iteration": t}
                  for tr in trials if tr.status == DONE and tr.reward is not None]
        merged = {p["hash"]: p for p in self.population + scored}
        population = sorted(merged.values(), key=lambda p: (-p["score"], p["trial"]))
        self.population = population[:self.config.evolution.population]
        origins = [origin for _, origin in (self._plan or [])]
        made = {"iteration": t, "random": origins.count("random"),
                "variation": len(origins) - origins.count("random"),
                "attempts": self._attempts if t else 0}
        self.children = [c for c in self.children if c["iteration"] != t] + [made]
        self.store.put_state(STATE, json.dumps(self.population).encode(),
                             {"iteration": t, "children": self.children})
        scores = [p["score"] for p in self.population] or [float("nan")]
        self.log(f"[search] evolution iteration {t}/{self.config.evolution.iterations}: "
                 f"{made['variation']} children by variation ({made['attempts']} attempts) "
                 f"+ {made['random']} random passed Select; scored {len(scored)} new, "
                 f"population best {max(scores):.4f} mean {np.mean(scores):.4f}")

    def summary(self) -> dict:
        """Children per iteration (Algorithm 1's P by variation within M attempts, plus R
        random), for summary.json."""
        return {"children_per_iteration": self.children}

    def exhausted(self) -> bool:
        return self.t > self.config.evolution.iterations

    def status(self) -> str:
        best = max((p["score"] for p in self.population), default=None)
        return (f"iteration {min(self.t, self.config.evolution.iterations)}/"
                f"{self.config.evolution.iterations}, population best "
                f"{'-' if best is None else f'{best:.4f}'}")
