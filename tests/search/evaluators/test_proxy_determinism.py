"""Deterministic children on the real proxy (issue 15, item 1): the same child with the
same seed gets the same score in a worker process whatever ran before it there, and on a
resumed search.

One pair of tiny searches serves both checks (2 children, 4 steps at 128 px, workers
processes of `search.executors.LocalExecutor`): run A evaluates X then Y in one worker;
run B is stopped once X is recorded, Y in flight, and resumed, so Y runs again alone in a
fresh worker.
"""

import math

import pytest

from search.config import load_config
from search.driver import Search
from search.store import DONE

pytestmark = pytest.mark.timeout(900)


class Interrupted(BaseException):
    """Like a kill: not an Exception, so nothing records it (see strategy_matrix.py)."""


def _config(dataset):
    d = dataset
    return load_config(overrides={
        "strategy": "random", "budget": 2, "workers": 1, "in_flight": 2, "seed": 3,
        "latency": {"source": "none"}, "reference_architectures": [],
        "proxy": {"train_data": d.search_train_records, "val_data": d.search_val_records,
                  "val_annotations": d.search_val_annotations, "input_size": 128,
                  "batch_size": 4, "train_steps": 4, "steps_per_check": 2,
                  "warmup_steps": 1, "eval_batch_size": 8, "max_eval_batches": 1,
                  "warm_start_steps": 0, "freeze_backbone": False,
                  "metric": "AP50", "eval_score_threshold": 0.001}})


@pytest.fixture(scope="module")
def runs(tiny_dataset, tmp_path_factory):
    """(uninterrupted children, resumed children, children of the run before its stop)."""
    config, root = _config(tiny_dataset), tmp_path_factory.mktemp("determinism")
    whole = Search(config, str(root / "a"), progress=False)
    whole.run()
    record = Search._record

    def stop_after_the_first(self, trial_id, result):
        record(self, trial_id, result)
        if self.store.counts()[DONE]:
            raise Interrupted()

    cut = Search(config, str(root / "b"), progress=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Search, "_record", stop_after_the_first)
        with pytest.raises(Interrupted):
            cut.run()
    before = cut.store.trials()
    cut.store.close()
    resumed = Search(config, str(root / "b"), resume=True, progress=False)
    resumed.run()
    return whole.store.trials(), resumed.store.trials(), before


def _score(t):
    return (t.arch_hash, t.seed, t.map, t.reward, t.timings["final_loss"], t.metrics)


def test_a_child_scores_the_same_after_another_in_its_worker_and_alone_in_a_fresh_one(runs):
    whole, resumed, before = runs
    x, y = whole
    assert x.arch_hash != y.arch_hash and x.timings["final_loss"] != y.timings["final_loss"]
    assert x.timings["worker_pid"] == y.timings["worker_pid"]  # Y after X, one worker
    assert math.isfinite(y.timings["final_loss"]) and y.timings["final_loss"] > 0
    assert [t.status for t in before] == [DONE, "running"]  # Y was in flight at the stop
    y_again = resumed[1]
    assert y_again.attempts == 2  # requeued by the resume, then alone in a fresh worker
    assert y_again.timings["worker_pid"] != before[0].timings["worker_pid"]
    assert _score(y_again) == _score(y)


def test_a_resumed_search_scores_every_child_as_an_uninterrupted_one(runs):
    whole, resumed, before = runs
    assert [t.status for t in resumed] == [DONE, DONE]
    assert (resumed[0].attempts, resumed[0].finished) == (1, before[0].finished)  # kept
    assert [_score(t) for t in resumed] == [_score(t) for t in whole]
