"""The one interface every search space offers, so any strategy can drive any space.

A space is a *decision program* (`run` asks `choose(kind, name, valid)` once per decision
and every accepted sequence decodes to a valid spec) plus points (`sample`, `key`, `spec`)
and variation operators. The generic `mutate` and `crossover` work on decisions by name,
so they suit any space whose program names its decisions stably.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Optional, Sequence

import numpy as np

from mnas_tf.spaces import DecisionError, Step
from mnas_tf.spaces.cell import replay

Chooser = Callable[[str, str, Sequence[int]], int]

__all__ = ["Chooser", "DecisionError", "SearchSpace", "Step", "Variation"]


@dataclasses.dataclass(frozen=True)
class Variation:
    """One evolution operator: `apply(parents, rng, prob)` -> a child spec, or None when
    it cannot make a valid, different child (the caller counts the attempt)."""

    name: str
    arity: int
    apply: Callable[[list, np.random.Generator, Optional[float]], Any]


class SearchSpace(abc.ABC):
    """A search space; subclasses supply the decision program, the codecs and the size."""

    name: str
    cell_space: Any = None

    # ------------------------------------------------------------- the program
    @property
    @abc.abstractmethod
    def kinds(self) -> dict[str, tuple]:
        """Decision kind -> its choices (the policy has one softmax head per kind)."""

    @abc.abstractmethod
    def decision_names(self) -> list[str]:
        """Every decision name a sequence can contain, in program order."""

    @abc.abstractmethod
    def run(self, choose: Chooser):
        """Asks `choose(kind, name, valid_indices)` for every decision; returns the spec."""

    @abc.abstractmethod
    def encode(self, spec) -> list[int]:
        """A decision sequence that decodes to `spec`; DecisionError when it is outside."""

    def decode_steps(self, decisions: Sequence[int]) -> tuple[Any, list[Step]]:
        """The spec of a decision sequence and the steps taken; DecisionError names the
        first decision that does not fit."""
        return replay(self.run, self.name, decisions)

    def decode(self, decisions: Sequence[int]):
        return self.decode_steps(decisions)[0]

    def sample_decisions(self, rng: np.random.Generator) -> list[int]:
        """Uniform over the valid choices at every step (not uniform over specs)."""
        out: list[int] = []
        self.run(lambda kind, name, valid: out.append(int(rng.choice(valid))) or out[-1])
        return out

    # ------------------------------------------------------------- points
    def sample(self, rng: np.random.Generator):
        """The space's own random sampler; by default the decoded `sample_decisions`."""
        return self.decode(self.sample_decisions(rng))

    @abc.abstractmethod
    def key(self, spec) -> dict:
        """Canonical JSON dict: what the store keeps and hashes."""

    @abc.abstractmethod
    def spec(self, arch: dict):
        """The inverse of `key` (validates; ArchitectureError)."""

    def arch_hash(self, spec) -> str:
        from search.store import arch_hash
        return arch_hash(self.key(spec))

    # ------------------------------------------------------------- evolution
    def variations(self) -> list[Variation]:
        return [Variation("mutate", 1, lambda parents, rng, prob=None:
                          self.mutate(parents[0], rng, prob)),
                Variation("crossover", 2, lambda parents, rng, prob=None:
                          self.crossover(parents[0], parents[1], rng))]

    def _named_choices(self, spec) -> tuple[dict[str, int], list[Step]]:
        steps = self.decode_steps(self.encode(spec))[1]
        return {s.name: s.choice for s in steps}, steps

    def mutate(self, spec, rng: np.random.Generator, prob: Optional[float] = None,
               tries: int = 10):
        """Re-run the program keeping each of the parent's decisions while it is still
        valid, re-drawing it among the OTHER valid choices with probability `prob`
        (default 1/number of decisions). At least one decision changes; since a change
        can be invisible (a pruned block), up to `tries` forced changes are tried until
        the key differs. None when no decision has a second valid choice."""
        parent, steps = self._named_choices(spec)
        if prob is None:
            prob = 1.0 / max(len(steps), 1)
        movable = [s.name for s in steps if len(s.valid) > 1]
        if not movable:
            return None
        wanted = self.key(spec)

        def walk(forced: Optional[str]):
            def choose(kind, name, valid):
                old = parent.get(name)
                if old not in valid:  # the structure changed above: draw afresh
                    return int(rng.choice(valid))
                others = [v for v in valid if v != old]
                if others and (name == forced or rng.random() < prob):
                    return int(others[int(rng.integers(len(others)))])
                return old
            return self.run(choose)

        for attempt in range(tries + 1):
            forced = None if attempt == 0 else movable[int(rng.integers(len(movable)))]
            child = self._finish(walk(forced))
            if self.key(child) != wanted:
                return child
        return None

    def crossover(self, a, b, rng: np.random.Generator):
        """Uniform crossover by decision name: a's or b's choice with p=0.5 when valid,
        else the other parent's when valid, else a random valid choice."""
        first, second = self._named_choices(a)[0], self._named_choices(b)[0]

        def choose(kind, name, valid):
            x, y = (first, second) if rng.random() < 0.5 else (second, first)
            for parent in (x, y):
                if parent.get(name) in valid:
                    return parent[name]
            return int(rng.choice(valid))

        return self._finish(self.run(choose))

    def _finish(self, spec):
        """What `decode` makes of `run`'s spec (the MnasFPN family prunes)."""
        return spec

    # ------------------------------------------------------------- size, toys
    @abc.abstractmethod
    def cardinality(self) -> int:
        """The exact number of decision sequences the program accepts."""

    def toy_objective(self, seed: int = 0):
        from search.spaces.toy import ToyObjective
        return ToyObjective(self, seed)

    @abc.abstractmethod
    def describe(self) -> dict:
        """JSON-able facts: name, family, cardinality, decisions, ..."""
