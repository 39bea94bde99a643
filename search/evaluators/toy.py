"""The toy evaluator: a known optimum and no training, for tests and benchmarks.

A child's score is the space's toy objective (mean per-decision closeness to a hidden
target architecture; exactly 1.0 there). `toy.delay_s` sleeps per child, standing in for
training time so faults can land mid-child; `toy.noise` adds Gaussian noise drawn from the
child's seed, so the same child and seed always score the same. A spec the space cannot
express (a reference architecture from outside it) scores 0, the objective's floor.
"""

from __future__ import annotations

import time

from search.evaluators.base import Evaluator


class ToyEvaluator(Evaluator):
    def __init__(self, config, out_dir=None):
        super().__init__(config, out_dir)
        self.objective = self.space.toy_objective(config.seed)

    def score(self, spec, seed: int) -> dict:
        if self.config.toy.delay_s:
            time.sleep(self.config.toy.delay_s)
        from mnas_tf.spaces import DecisionError
        try:
            value = self.objective.score(spec)
        except DecisionError:  # no decision sequence of this space: nothing in common
            value = 0.0
        if self.config.toy.noise:
            import numpy as np
            arch = int(self.space.arch_hash(spec), 16) % 2**32  # per child, not per seed only
            value += float(np.random.default_rng([seed, arch]).normal(0.0,
                                                                      self.config.toy.noise))
        return {"status": "done", "map": value, "metrics": {"toy_score": value},
                "timings": {}}
