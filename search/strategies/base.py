"""What every strategy is: propose architectures, learn from the store's results."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Optional

import numpy as np

MAX_DRAWS = 10_000  # draws of a random feasible architecture before giving up


class StrategyError(RuntimeError):
    """A strategy that cannot propose (e.g. nothing passes the constraint); one line."""


@dataclasses.dataclass
class Proposal:
    """One architecture to evaluate, with what the strategy needs back from it."""

    spec: Any
    extra: dict = dataclasses.field(default_factory=dict)
    log_prob: Optional[float] = None
    policy_version: Optional[int] = None


class Strategy(abc.ABC):
    """Reads the search's store (the only truth, so a resume needs no replay) and the
    space; `feasible(spec)` is the constraint (always true without one)."""

    #: whether proposals outside the constraint are still evaluated as rejected children
    #: (a policy must learn from them) instead of being redrawn
    learns_from_rejects = False

    def __init__(self, space, config, store, feasible: Callable[[Any], bool]):
        self.space, self.config, self.store, self.feasible = space, config, store, feasible
        self.log: Callable[[str], None] = lambda message: None  # the driver's console

    def restore(self) -> None:
        """Picks up the state a killed search saved in the store."""

    @abc.abstractmethod
    def propose(self, rng: np.random.Generator) -> Optional[Proposal]:
        """The next architecture, or None while it must wait for results in flight."""

    def observe(self, final: bool = False) -> None:
        """Results landed in the store; `final`: the search is ending."""

    def exhausted(self) -> bool:
        """True when the strategy will never propose again (evolution after T)."""
        return False

    def status(self) -> str:
        """A few words for the periodic summary line."""
        return ""

    def summary(self) -> dict:
        """Figures for summary.json."""
        return {}

    def scalars(self) -> dict:
        """TensorBoard scalars since the last call: (name, step) -> value."""
        return {}

    def random_feasible(self, rng: np.random.Generator, exclude=frozenset()):
        """A random architecture of the space that passes the constraint (and is not in
        `exclude`, a set of hashes)."""
        for _ in range(MAX_DRAWS):
            spec = self.space.sample(rng)
            if self.feasible(spec) and self.space.arch_hash(spec) not in exclude:
                return spec
        raise StrategyError(f"no new architecture passed the constraint in {MAX_DRAWS} random "
                            f"draws; widen constraint.tolerance")
