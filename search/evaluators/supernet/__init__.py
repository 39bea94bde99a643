"""The one-shot evaluator: children inherit a super-net's weights (MSNAS, paper §3).

`prepare` trains the super-net once, before the workers start: one uniform valid path per
step, checkpointed under OUT/supernet and resumable after a kill; it also draws the fixed
fine-tune batches (one .npz each under OUT/supernet_finetune). Each worker restores that
checkpoint; a child is fine-tuned briefly on the fixed batches (which also re-estimates its BN
statistics), scored on search-val with `supernet.metric`, and the shared weights are put
back. Super-nets exist per space: `msnas` today (`supernet.detector`: the one-stage
`retinanet` stand-in, `msnas.SuperNet`, or the paper's two-stage `fasterrcnn`,
`fasterrcnn.FasterRCNNSuperNet`); the MnasFPN-family one is issue 16.
"""

from __future__ import annotations

from typing import Optional

from search.evaluators.base import Evaluator


class SupernetEvaluator(Evaluator):
    needs_prepare = True

    def __init__(self, config, out_dir=None):
        super().__init__(config, out_dir)
        self._trainer = None

    @classmethod
    def is_prepared(cls, config, out_dir: str) -> bool:
        from search.evaluators.supernet.training import finetune_batches_ready, trained_steps
        return (trained_steps(out_dir) >= config.supernet.steps
                and finetune_batches_ready(config, out_dir))

    @classmethod
    def prepare(cls, config, out_dir: str, progress: bool = True) -> Optional[dict]:
        from search.evaluators.supernet import training
        evaluator = cls(config, out_dir)
        trainer = training.build_trainer(config, evaluator.space)
        figures = training.train_supernet(trainer, config, evaluator.space, out_dir, progress)
        training.load_finetune_batches(trainer, config, out_dir)
        return figures

    def trainer(self):
        """The trained super-net, restored from the search's checkpoint on first use."""
        if self._trainer is None:
            from search.evaluators.supernet import training
            trainer = training.build_trainer(self.config, self.space)
            training.restore_trained(trainer, self.out_dir)
            training.load_finetune_batches(trainer, self.config, self.out_dir)
            self._trainer = trainer
        return self._trainer

    def score(self, spec, seed: int) -> dict:
        metrics, timings = self.trainer().score(spec, self.config.supernet.finetune_steps)
        return {"status": "done", "map": metrics[self.config.supernet.metric],
                "metrics": metrics, "timings": timings}
