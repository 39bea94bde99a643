"""PPO over the space's decisions (MnasNet / MnasFPN's controller), asynchronous.

Children are sampled ahead of the workers (`in_flight`); after every `ppo.update_every`
finished children the policy takes a PPO update on them, with advantages against a moving
baseline. The policy's weights, optimiser slots, baseline and the set of children already
learned from are saved in one store transaction per update, so a resumed search neither
loses nor repeats an update, and every finished child feeds exactly one.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from search.store import DONE
from search.strategies.base import Proposal, Strategy
from search.strategies.policy import MovingBaseline, Policy

STATE = "controller"


@dataclasses.dataclass
class ControllerState:
    """What the controller carries between updates (saved after each one)."""

    baseline: Optional[float] = None
    consumed: set = dataclasses.field(default_factory=set)
    updates: int = 0
    last_entropy: Optional[float] = None


class PPOStrategy(Strategy):
    learns_from_rejects = True

    def __init__(self, space, config, store, feasible):
        super().__init__(space, config, store, feasible)
        self.policy = Policy(space, config.ppo, seed=config.seed)
        self.state = ControllerState()
        self._scalars: dict = {}

    def restore(self) -> None:
        saved = self.store.get_state(STATE)
        if saved:
            blob, meta = saved
            self.policy.load_state(blob)
            self.state = ControllerState(meta["baseline"], set(meta["consumed"]),
                                         meta["updates"], meta.get("entropy"))

    def _save(self) -> None:
        s = self.state
        self.store.put_state(STATE, self.policy.state(), {
            "baseline": s.baseline, "consumed": sorted(s.consumed), "updates": s.updates,
            "entropy": s.last_entropy, "version": self.policy.version})

    def propose(self, rng):
        sample = self.policy.sample(rng)
        return Proposal(self.space.decode(sample.decisions),
                        {"decisions": list(sample.decisions),
                         "step_log_probs": list(sample.step_log_probs)},
                        log_prob=sample.log_prob, policy_version=self.policy.version)

    def observe(self, final: bool = False) -> None:
        # duplicates finish at sampling time, so one wait can leave several batches ready
        while self._update(final):
            pass

    def _update(self, final: bool) -> Optional[dict]:
        """PPO on the oldest K finished, unconsumed children; `final` also takes a last,
        smaller batch."""
        ready = [t for t in self.store.trials(DONE)
                 if t.id not in self.state.consumed and t.reward is not None
                 and "step_log_probs" in t.extra]
        k = self.config.ppo.update_every
        if len(ready) < k and not (final and ready):
            return None
        batch = ready[:k]
        s = self.state
        baseline = MovingBaseline(self.config.ppo.baseline_decay, s.baseline)
        advantages = baseline.advantages([t.reward for t in batch])
        stats = self.policy.update([t.extra["decisions"] for t in batch],
                                   [t.extra["step_log_probs"] for t in batch], advantages)
        s.baseline = baseline.value
        s.consumed.update(t.id for t in batch)
        s.updates += 1
        s.last_entropy = stats["entropy"]
        with self.store.transaction():
            self._save()
        # keyed by (name, update): several updates in one observe all reach TensorBoard
        self._scalars.update({(name, s.updates): value for name, value in (
            ("controller/entropy", stats["entropy"]), ("controller/baseline", s.baseline),
            ("controller/loss", stats["loss"]))})
        return stats

    def scalars(self) -> dict:
        out, self._scalars = self._scalars, {}
        return out

    def status(self) -> str:
        s = self.state
        fmt = lambda v: "-" if v is None else f"{v:.4g}"
        return f"updates {s.updates} | entropy {fmt(s.last_entropy)} | baseline {fmt(s.baseline)}"

    def summary(self) -> dict:
        return {"updates": self.state.updates}
