"""The proxy evaluator: train a child briefly on the proxy task, then COCO-evaluate it
(MnasFPN's proxy; `mnas_tf.proxy.ProxyEngine` does the work).

A worker keeps what children share: the proxy engine (data pipelines, COCO evaluator).
`prepare` trains the warm-start backbone once, before the workers start.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Optional

from search.evaluators.base import Evaluator


class ProxyEvaluator(Evaluator):
    needs_prepare = True

    def __init__(self, config, out_dir=None):
        super().__init__(config, out_dir)
        self._engine = None

    @classmethod
    def is_prepared(cls, config, out_dir: str) -> bool:
        from mnas_tf.warm_start import cached_checkpoint
        cfg = config.proxy
        return bool(cfg.init_checkpoint or not cfg.warm_start_steps or cached_checkpoint(cfg))

    @classmethod
    def prepare(cls, config, out_dir: str, progress: bool = True) -> Optional[dict]:
        """Trains the warm-start backbone (cached across searches) unless it exists."""
        from mnas_tf.warm_start import WarmStartError, cached_checkpoint
        cfg = config.proxy
        if cfg.init_checkpoint or not cfg.warm_start_steps or cached_checkpoint(cfg):
            return None
        from mnas_tf import console
        evaluator = cls(config, out_dir)
        try:
            with console.trial_log(os.path.join(out_dir, "logs", "warm_start.log")):
                warmed = evaluator.engine().with_warm_start(cfg)
        except WarmStartError as e:
            raise RuntimeError(f"{e}; lower proxy.learning_rate or set "
                               f"proxy.init_checkpoint") from None
        return {"warm_start": warmed.init_checkpoint}

    def engine(self):
        """The worker's proxy engine, built on first use (data pipelines, evaluator)."""
        if self._engine is None:
            import tensorflow as tf
            from mnas_tf import proxy
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
            self._engine = proxy.ProxyEngine(self.config.proxy)
        return self._engine

    def score(self, spec, seed: int) -> dict:
        from mnas_tf import proxy
        engine = self.engine()
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables
            r = engine.run(spec, seed=seed)
        if r.status != proxy.OK:
            return {"status": "failed", "error": r.reason, "metrics": r.metrics,
                    "timings": r.timings}
        return {"status": "done", "map": r.score, "metrics": r.metrics,
                "timings": {**r.timings, "steps": r.steps, "final_loss": r.final_loss}}
