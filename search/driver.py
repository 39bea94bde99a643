"""The one search driver: any space x any strategy x any evaluator, one store, one loop.

The strategy proposes, the executor evaluates (worker processes, Ray actors, or inline for
the toy), the driver records, and the strategy learns from the store. Everything lands in
OUT/search.sqlite as it happens: every child is a row before it runs, with the sampler's
RNG state in the same transaction, so after a kill -9 `--resume` requeues exactly the
children in flight and loses or repeats nothing. A child whose worker died is re-queued
up to `max_retries` times (the retries are recorded in its row); a child that fails on its
own is recorded as failed.

Reference architectures (`search.references`, by default the published cell) are added
once per search when it starts or resumes, trained like children by the same executor,
and recorded as trials of role "reference": outside the budget, the strategy and top-k.

Outputs for every combination: a progress bar and periodic summary lines, TensorBoard
scalars, frontier.json/png (non-dominated cost-score children), progress.png (score by
child or by evolution iteration), top_k.json plus one loadable architecture file per
winner, and summary.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Optional

from mnas_tf import console  # noqa: F401  pylint: disable=unused-import  (first: quiets TensorFlow)
import numpy as np  # noqa: E402

from search import store as trial_store  # noqa: E402
from search.config import SearchConfig  # noqa: E402
from search.rewards import reward as compute_reward  # noqa: E402

LOST = "lost"  # an executor's result when the worker died mid-child


class SearchError(RuntimeError):
    """A search that cannot start or continue; the message says what to do."""


class Search:
    def __init__(self, config: SearchConfig, out_dir: str, resume: bool = False,
                 executor: str = "local", address: Optional[str] = None,
                 progress: bool = True):
        from search.constraints import build_constraint
        from search.spaces import get_space
        from search.strategies import StrategyError, build_strategy
        self.config, self.out_dir, self.progress = config, out_dir, progress
        self.space = get_space(config.space, config.space_overrides)
        target = stored_target(out_dir, resume)
        self.constraint = build_constraint(config, self.space, target)
        run_config = dict(config.run_config(), constraint_target=self.constraint.target)
        try:
            self.store = trial_store.open_store(out_dir, run_config, resume)
        except (trial_store.ConfigMismatch, trial_store.StoreError) as e:
            raise SearchError(str(e)) from None
        _check_experiment(config)  # after the store's cheap refusals: it loads Model Garden
        self.executor_kind, self.address = executor, address
        self.rng = np.random.default_rng(config.seed)
        rng = self.store.get_state("sampler_rng")
        if rng:
            self.rng.bit_generator.state = json.loads(rng[0].decode())
        try:
            self.strategy = build_strategy(config, self.space, self.store, self.constraint)
        except StrategyError as e:
            raise SearchError(str(e)) from None
        self.latency = None
        if config.latency.source == "lut":
            from search.objectives import latency_predictor
            from search.references import reference_specs
            extra = [spec for _, spec in reference_specs(config)]
            if config.reward.target is not None:  # the relative target's reference is priced
                from mnas_tf.arch import load_architecture
                extra.append(load_architecture(config.reward.target["reference"]))
            self.latency = latency_predictor(config, self.space.cell_space, progress, extra)
        self.target = self._target()
        self._waiting: dict[str, list[int]] = {}  # arch hash in flight -> duplicate trials
        self._in_flight: dict[str, int] = {}
        self._references: set[int] = set()  # reference trials in flight
        self._writer = None
        self.prepared: Optional[dict] = None
        self._log = self._notice = print

    def _target(self) -> dict:
        """The reward's target in ms: resolved once per search (a relative target is priced
        on this device when the search starts) and kept in the store, so a resume, a
        retrain or a report uses the same number."""
        saved = self.store.get_state("reward_target")
        if saved:
            return saved[1]
        if self.config.latency.source == "none":
            return {"target_ms": self.config.reward.target_ms, "how": "no latency: the reward "
                    "is the score"}
        from search.objectives import resolve_target
        try:
            target = resolve_target(self.config, self.latency)
        except Exception as e:  # pylint: disable=broad-except  (one line for the user)
            raise SearchError(f"reward.target: cannot price the reference: "
                              f"{type(e).__name__}: {e}") from None
        self.store.put_state("reward_target", json.dumps(target).encode(), target)
        return target

    # ----------------------------------------------------------------- proposals
    def _propose(self) -> bool:
        """Adds the strategy's next child (with the sampler's RNG, in one transaction)
        and dispatches it; False when the strategy has nothing to propose now."""
        proposal = self.strategy.propose(self.rng)
        if proposal is None:
            return False
        arch = self.space.key(proposal.spec)
        key = trial_store.arch_hash(arch)
        seed = int(self.rng.integers(2**31))
        with self.store.transaction():
            trial_id = self.store.add(arch, key, seed, log_prob=proposal.log_prob,
                                      policy_version=proposal.policy_version,
                                      extra=proposal.extra)
            self.store.put_state("sampler_rng",
                                 json.dumps(self.rng.bit_generator.state).encode())
        trial = self.store.get(trial_id)
        if not self.constraint(proposal.spec):  # only strategies that learn from rejects
            self._reject(trial_id, proposal.spec)
            return True
        self._dispatch(trial)
        return True

    def _reject(self, trial_id: int, spec) -> None:
        """A child outside the Select window is not evaluated. Its reward is minus its
        distance beyond the window (relative to the target): below every child inside,
        and higher the closer it came, so a policy learns its way into the window."""
        cost = self.constraint.cost(spec)
        c = self.constraint
        distance = abs(cost / c.target - 1.0) - c.tolerance
        self.store.finish(trial_id, map=None, reward=-float(distance), madds=cost,
                          extra={"rejected": f"outside the constraint window (MAdds "
                                             f"{cost:.4g}, target {c.target:.4g} "
                                             f"+-{c.tolerance:.0%})"})

    def _dispatch(self, trial) -> None:
        """Reuses a finished duplicate, waits on one in flight, or submits the child."""
        done = self.store.find(trial.arch_hash)
        if done is not None and done.id != trial.id:
            self._finish_as_copy(trial.id, done)
        elif trial.arch_hash in self._in_flight:
            self._waiting.setdefault(trial.arch_hash, []).append(trial.id)
        else:
            self._in_flight[trial.arch_hash] = trial.id
            self.store.start(trial.id)
            self.executor.submit(trial.id, trial.arch, trial.seed)

    def _finish_as_copy(self, trial_id: int, source) -> None:
        self.store.finish(trial_id, status=source.status, map=source.map,
                          latency_ms=source.latency_ms, madds=source.madds,
                          reward=source.reward, error=source.error, metrics=source.metrics,
                          timings={}, extra={"reused_from": source.id})

    # ----------------------------------------------------------------- results
    def _record(self, trial_id: int, result: dict) -> None:
        trial = self.store.get(trial_id)
        if result["status"] == LOST and self._retry(trial, result):
            return
        latency, reward, error = result.get("latency_ms"), None, result.get("error")
        status = trial_store.DONE if result["status"] == "done" else trial_store.FAILED
        madds = result.get("madds")
        if madds is None and self.constraint.madds is not None:
            madds = self.constraint.cost(self.space.spec(trial.arch))
        if status == trial_store.DONE:
            try:
                if self.latency is not None:
                    latency = self.latency(trial.arch)
                reward = self._reward(result["map"], latency)
            except Exception as e:  # pylint: disable=broad-except  (recorded as failed)
                status, error = trial_store.FAILED, f"latency: {type(e).__name__}: {e}"
        self.store.finish(trial_id, status=status, map=result.get("map"), latency_ms=latency,
                          madds=madds, reward=reward, error=error,
                          metrics=result.get("metrics"), timings=result.get("timings"))
        if trial.role == trial_store.REFERENCE:
            self._references.discard(trial_id)
            if status == trial_store.FAILED:
                self._notice(f"[search] warning: reference {trial.extra.get('reference')} "
                             f"(trial {trial_id}) failed ({error}); the search goes on")
            return
        self._in_flight.pop(trial.arch_hash, None)
        finished = self.store.get(trial_id)
        for copy_id in self._waiting.pop(trial.arch_hash, []):
            self._finish_as_copy(copy_id, finished)
        self._log_child(finished)

    def _retry(self, trial, result: dict) -> bool:
        """A child whose worker died runs again, up to `max_retries` times (Optuna's
        RetryFailedTrialCallback); each loss is recorded in its row."""
        retries = list(trial.extra.get("retries", [])) + [
            {"error": result.get("error"), "at": time.time()}]
        with self.store.transaction():
            self.store.set_extra(trial.id, {"retries": retries})
            if len(retries) > self.config.max_retries:
                return False
            self.store.requeue(trial.id)
        self._notice(f"[search] child {trial.id} lost its worker ({result.get('error')}); "
                  f"retry {len(retries)}/{self.config.max_retries}")
        self.store.start(trial.id)
        self.executor.submit(trial.id, trial.arch, trial.seed)
        return True

    def _reward(self, score: float, latency: Optional[float]) -> float:
        r = self.config.reward
        if latency is None:
            return float(score)
        if self.target["target_ms"] is None:  # no latency source: nothing to trade against
            return float(score)
        return float(compute_reward(r.kind, score, latency, self.target["target_ms"], r.w))

    # ----------------------------------------------------------------- references
    def _start_references(self) -> None:
        """Adds each configured reference not yet in the store (once per search, with the
        search's seed), then submits every pending one (new, or requeued by a resume)."""
        from search.references import reference_specs
        known = {t.extra.get("reference") for t in self.store.references()}
        for name, spec in reference_specs(self.config):
            if name not in known:
                arch = self.space.key(spec)
                self.store.add(arch, trial_store.arch_hash(arch), self.config.seed,
                               extra={"reference": name}, role=trial_store.REFERENCE)
        for trial in self.store.references(trial_store.PENDING):
            self._references.add(trial.id)
            self.store.start(trial.id)
            self.executor.submit(trial.id, trial.arch, trial.seed)

    # ----------------------------------------------------------------- the loop
    def _finished(self) -> int:
        counts = self.store.counts()
        return counts[trial_store.DONE] + counts[trial_store.FAILED]

    def _budget_left(self) -> bool:
        budget = self.config.budget
        return budget is None or sum(self.store.counts().values()) < budget

    def _fill(self) -> int:
        """Proposes children until `in_flight` are out (or the budget or the strategy
        says stop); returns how many were added."""
        added = 0
        while self.executor.running() < self.config.in_flight and self._budget_left():
            if not self._propose():
                break
            added += 1
        return added

    def run(self) -> dict:
        from tqdm import tqdm

        from search.executors import make_executor
        start = time.perf_counter()
        requeued = self.store.requeue_running()
        self._prepare()
        self.executor = make_executor(self.executor_kind, self.config, self.address,
                                      log_dir=os.path.join(self.out_dir, "logs"),
                                      out_dir=self.out_dir)
        budget = self.config.budget
        done_at_start = self._finished()
        bar = tqdm(total=budget, initial=min(done_at_start, budget or done_at_start),
                   unit="child", desc="search", disable=not self.progress, dynamic_ncols=True)
        self._log = bar.write if self.progress else (lambda message: None)
        # what a user must hear of even with --quiet: resumed and lost children
        self._notice = bar.write if self.progress else (
            lambda message: print(message, file=sys.stderr))
        self.strategy.log = self._log
        if self.config.latency.source != "none":
            self._log(f"[search] reward target: {self.target['how']}")
        if requeued:
            self._notice(f"[search] resumed: {len(requeued)} trial(s) that were running are "
                      f"requeued: {requeued}")
        try:
            self._start_references()
            for trial in self.store.trials(trial_store.PENDING):
                self._dispatch(trial)
            self.strategy.observe()
            while budget is None or self._finished() < budget:
                self._fill()
                if self.executor.running() == 0:
                    self.strategy.observe()  # e.g. closes an evolution iteration
                    if self._fill() == 0 and self.executor.running() == 0:
                        break  # nothing in flight and nothing left to propose
                    continue
                before = self._finished()
                for trial_id, result in self.executor.wait():
                    self._record(trial_id, result)
                self.strategy.observe()
                self._scalars()
                now = self._finished()
                bar.update(now - bar.n if budget is None else min(now, budget) - bar.n)
                every = self.config.summary_every
                if now // every > before // every:
                    self._log(self.summary_line(start, done_at_start))
            while self._references and self.executor.running():  # budget spent first
                for trial_id, result in self.executor.wait():
                    self._record(trial_id, result)
            self.strategy.observe(final=True)
            self._scalars()
        finally:
            bar.close()
            self.executor.shutdown()
        return self.finalize(start, done_at_start)

    def _prepare(self) -> None:
        """The evaluator's one-off work (warm start, super-net training) in a process of
        its own, so its progress shows up front and workers find its results on disk."""
        from search.evaluators import evaluator_class
        cls = evaluator_class(self.config.evaluator)
        if not cls.needs_prepare:
            return
        if cls.is_prepared(self.config, self.out_dir):
            saved = self.store.get_state("prepared")
            self.prepared = saved[1] if saved else None
            return
        from search.evaluators import PrepareError, prepare_in_process
        try:
            figures = prepare_in_process(self.config, self.out_dir, self.progress)
        except PrepareError as e:
            raise SearchError(str(e)) from None
        self.prepared = figures
        if figures:
            self.store.put_state("prepared", json.dumps(figures).encode(), figures)

    # ----------------------------------------------------------------- reporting
    def metric_name(self) -> str:
        return metric_name(self.config)

    def summary_line(self, start: float, done_at_start: int) -> str:
        counts = self.store.counts()
        done = counts[trial_store.DONE] + counts[trial_store.FAILED]
        hours = (time.perf_counter() - start) / 3600
        rate = (done - done_at_start) / hours if hours > 0 else 0.0
        best = self.best()
        best_text = (f"best reward {best.reward:.4f} (trial {best.id}, {self.metric_name()} "
                     f"{_fmt(best.map)}, {_fmt(best.latency_ms)} ms)" if best else
                     "best reward -")
        status = self.strategy.status()
        return (f"[search] {counts[trial_store.DONE]} done / {counts[trial_store.RUNNING]} "
                f"running / {counts[trial_store.FAILED]} failed | {rate:.1f} children/h | "
                f"{best_text}" + (f" | {status}" if status else ""))

    def best(self):
        scored = [t for t in self.store.trials(trial_store.DONE)
                  if t.reward is not None and t.map is not None]
        return max(scored, key=lambda t: (t.reward, -t.id)) if scored else None

    def top(self) -> list:
        """The `top_k` best distinct architectures by reward."""
        seen, out = set(), []
        for t in sorted((t for t in self.store.trials(trial_store.DONE)
                         if t.reward is not None and t.map is not None),
                        key=lambda t: (-t.reward, t.id)):
            if t.arch_hash not in seen:
                seen.add(t.arch_hash)
                out.append(t)
        return out[:self.config.top_k]

    def categories(self) -> list[dict]:
        """[{id, name}] of the data the children were scored on (none for the toy)."""
        from mnas_tf.data.labels import categories_of
        section = {"proxy": self.config.proxy, "supernet": self.config.supernet}.get(
            self.config.evaluator)
        return categories_of(getattr(section, "val_annotations", None)
                             or getattr(section, "val_data", None))

    def finalize(self, start: float, done_at_start: int) -> dict:
        from search.frontier import plot_progress, write_frontier, write_top_k
        from search.references import reference_trials, summary_rows
        trials = self.store.trials(trial_store.DONE)
        frontier = write_frontier(trials, self.out_dir, self.target["target_ms"],
                                  self.metric_name(),
                                  reference_trials(self.store, trial_store.DONE))
        plot_progress(trials, os.path.join(self.out_dir, "progress.png"), self.metric_name())
        top = self.top()
        write_top_k(top, self.out_dir, self.config, self.metric_name())
        best = self.best()
        summary = {"out": self.out_dir, "database": self.store.path,
                   "space": self.config.space,
                   "space_overrides": dict(self.config.space_overrides),
                   "strategy": self.config.strategy, "evaluator": self.config.evaluator, "metric": self.metric_name(),
                   "counts": self.store.counts(), **self.strategy.summary(),
                   "frontier": len(frontier), "prepared": self.prepared,
                   "constraint_target_madds": self.constraint.target,
                   "reward_target": self.target,
                   "categories": self.categories(),
                   "best": None if best is None else {
                       "trial": best.id, "reward": best.reward, "map": best.map,
                       "metric": self.metric_name(), "latency_ms": best.latency_ms,
                       "madds": best.madds, "arch": best.arch},
                   "top_k": [t.id for t in top],
                   "references": summary_rows(self.store),
                   "seconds": round(time.perf_counter() - start, 1)}
        with open(os.path.join(self.out_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        if self._writer is not None:
            self._writer.flush()
        return summary

    # ----------------------------------------------------------------- logging
    def _scalar(self, name: str, value: Optional[float], step: int) -> None:
        if value is None:
            return
        import tensorflow as tf
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(
                os.path.join(self.out_dir, "tensorboard"))
        with self._writer.as_default():
            tf.summary.scalar(name, value, step=step)

    def _scalars(self) -> None:
        for (name, step), value in self.strategy.scalars().items():
            self._scalar(name, value, step)

    def _log_child(self, trial) -> None:
        if trial.status == trial_store.DONE:
            self._scalar("child/map", trial.map, trial.id)
            self._scalar("child/latency_ms", trial.latency_ms, trial.id)
            self._scalar("child/reward", trial.reward, trial.id)


def metric_name(config) -> str:
    """What the `map` column holds: the evaluator's scoring metric."""
    if config.evaluator == "toy":
        return "toy score"
    if config.evaluator == "supernet":
        return f"one-shot {config.supernet.metric}"
    return config.proxy.metric


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4g}"


def _check_experiment(config) -> None:
    """The evaluator's Model Garden experiment exists (before any store or worker)."""
    name = {"proxy": config.proxy.experiment,
            "supernet": config.supernet.experiment}.get(config.evaluator)
    if name is None:
        return
    from mnas_tf.config_files import ConfigError
    from mnas_tf.experiment import load_experiment
    try:
        load_experiment(name)
    except ConfigError as e:
        raise SearchError(f"{config.evaluator}.experiment: {e}") from None


def stored_target(out_dir: str, resume: bool) -> Optional[float]:
    """The constraint target a resumed search resolved when it started (read only)."""
    path = os.path.join(out_dir, trial_store.DB_NAME)
    if not resume or not os.path.exists(path):
        return None
    try:
        trial_store.check_store(path)
        import sqlite3
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key='config'").fetchone()
        finally:
            db.close()
        return json.loads(row[0]).get("constraint_target")
    except (trial_store.StoreError, ValueError, TypeError):
        return None  # open_store names the problem
