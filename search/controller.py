"""`python -m search.controller`: the latency-aware PPO search (MnasNet / MnasFPN).

    python -m search.controller [--config configs/search/NAME.yaml] [--out DIR] [--resume]
                                [--executor local|ray] [--address ADDR] [--budget N]

Samples heads from the space with an LSTM policy, trains each child on the proxy task
(in worker processes or Ray actors), prices it with the latency look-up table (or measures
it), and learns from reward = mAP x (latency / target)^w with PPO. With no arguments it
runs the embedded default (configs/search/default.yaml) on the synthetic dataset.

Everything lands in DIR/search.sqlite as it happens; `--resume` after a kill continues
with no finished child lost or repeated. DIR also gets frontier.json / frontier.png
(non-dominated latency-mAP children) and TensorBoard scalars.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import dataclasses
import json
import multiprocessing
import os
import sys
import time
from typing import Optional, Sequence

from mnas_tf import console  # noqa: E402  (first: quiets TensorFlow before it loads)
import numpy as np  # noqa: E402

from search import store as trial_store  # noqa: E402
from search.config import SearchConfig, SearchConfigError, default_out_dir, load_config  # noqa
from search.policy import MovingBaseline, Policy  # noqa: E402
from search.rewards import reward as compute_reward  # noqa: E402
from mnas_tf.spaces import canonical_dict, get_space  # noqa: E402


class SearchError(RuntimeError):
    """A search that cannot start or continue; the message says what to do."""


@dataclasses.dataclass
class ControllerState:
    """What the controller carries between updates (saved after each one)."""

    baseline: Optional[float] = None
    consumed: set = dataclasses.field(default_factory=set)
    updates: int = 0
    last_entropy: Optional[float] = None


class Search:
    def __init__(self, config: SearchConfig, out_dir: str, resume: bool = False,
                 executor: str = "local", address: Optional[str] = None,
                 progress: bool = True):
        self.config, self.out_dir, self.progress = config, out_dir, progress
        try:
            self.store = trial_store.open_store(out_dir, config.run_config(), resume)
        except (trial_store.ConfigMismatch, trial_store.StoreError) as e:
            raise SearchError(str(e)) from None
        self.space = get_space(config.space, **config.space_overrides)
        self.executor_kind, self.address = executor, address
        self.policy = Policy(self.space, config.ppo, seed=config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.state = ControllerState()
        self._restore()
        self.latency = latency_predictor(config, self.space, progress) \
            if config.latency.source == "lut" else None
        self._waiting: dict[str, list[int]] = {}  # arch hash in flight -> duplicate trials
        self._in_flight: dict[str, int] = {}
        self._writer = None

    # ----------------------------------------------------------------- persistence
    def _restore(self) -> None:
        saved = self.store.get_state("controller")
        if saved:
            blob, meta = saved
            self.policy.load_state(blob)
            self.state = ControllerState(meta["baseline"], set(meta["consumed"]),
                                         meta["updates"], meta.get("entropy"))
        rng = self.store.get_state("sampler_rng")
        if rng:
            self.rng.bit_generator.state = json.loads(rng[0].decode())

    def _save_controller(self) -> None:
        s = self.state
        self.store.put_state("controller", self.policy.state(), {
            "baseline": s.baseline, "consumed": sorted(s.consumed), "updates": s.updates,
            "entropy": s.last_entropy, "version": self.policy.version})

    # ----------------------------------------------------------------- sampling
    def _sample_trial(self) -> None:
        """Samples a child and records it (with the sampler's RNG) in one transaction."""
        sample = self.policy.sample(self.rng)
        spec = self.space.decode(sample.decisions)
        arch = canonical_dict(spec)
        key = trial_store.arch_hash(arch)
        seed = int(self.rng.integers(2**31))
        with self.store.transaction():
            trial_id = self.store.add(arch, key, seed, log_prob=sample.log_prob,
                                      policy_version=self.policy.version,
                                      extra={"decisions": list(sample.decisions),
                                             "step_log_probs": list(sample.step_log_probs)})
            self.store.put_state("sampler_rng",
                                 json.dumps(self.rng.bit_generator.state).encode())
        self._dispatch(self.store.get(trial_id))

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
        latency, reward, error = result.get("latency_ms"), None, result.get("error")
        status = result["status"]
        if status == "done":
            try:
                if self.latency is not None:
                    latency = self.latency(trial.arch)
                reward = self._reward(result["map"], latency)
            except Exception as e:  # pylint: disable=broad-except  (recorded as failed)
                status, error = "failed", f"latency: {type(e).__name__}: {e}"
        self.store.finish(trial_id, status=status, map=result.get("map"), latency_ms=latency,
                          madds=result.get("madds"), reward=reward, error=error,
                          metrics=result.get("metrics"), timings=result.get("timings"))
        self._in_flight.pop(trial.arch_hash, None)
        finished = self.store.get(trial_id)
        for copy_id in self._waiting.pop(trial.arch_hash, []):
            self._finish_as_copy(copy_id, finished)
        self._log_child(finished)

    def _reward(self, map_: float, latency: Optional[float]) -> float:
        r = self.config.reward
        if latency is None:
            return float(map_)
        return float(compute_reward(r.kind, map_, latency, r.target_ms, r.w))

    def _maybe_update(self, final: bool = False) -> Optional[dict]:
        """PPO on the oldest K finished, unconsumed children; saved atomically. `final`
        also takes a last, smaller batch, so every finished child feeds exactly one
        update."""
        ready = [t for t in self.store.trials(trial_store.DONE)
                 if t.id not in self.state.consumed and t.reward is not None
                 and "step_log_probs" in t.extra]
        k = self.config.update_every
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
            self._save_controller()
        self._scalar("controller/entropy", stats["entropy"], s.updates)
        self._scalar("controller/baseline", s.baseline, s.updates)
        self._scalar("controller/loss", stats["loss"], s.updates)
        return stats

    # ----------------------------------------------------------------- the loop
    def run(self) -> dict:
        from tqdm import tqdm

        from search.executors import make_executor
        start = time.perf_counter()
        requeued = self.store.requeue_running()
        self._prepare_warm_start()
        self.executor = make_executor(self.executor_kind, self.config, self.address,
                                      log_dir=os.path.join(self.out_dir, "logs"))
        budget = self.config.budget
        finished = lambda: sum(self.store.counts()[s] for s in (trial_store.DONE,
                                                                trial_store.FAILED))
        done_at_start = finished()
        bar = tqdm(total=budget, initial=min(done_at_start, budget), unit="child",
                   desc="search", disable=not self.progress, dynamic_ncols=True)
        if requeued and self.progress:
            bar.write(f"[search] resumed: {len(requeued)} child(ren) that were running are "
                      f"requeued: {requeued}")
        try:
            for trial in self.store.trials(trial_store.PENDING):
                self._dispatch(trial)
            while finished() < budget:
                total = len(self.store.trials())
                while self.executor.running() < self.config.in_flight and total < budget:
                    self._sample_trial()
                    total += 1
                if self.executor.running() == 0:
                    if total >= budget:
                        break  # nothing in flight and nothing left to sample
                    continue
                for trial_id, result in self.executor.wait():
                    self._record(trial_id, result)
                while self._maybe_update():  # duplicates finish at sampling time, so a
                    pass                     # wait can leave more than one batch ready
                now = finished()
                bar.update(min(now, budget) - bar.n)
                if now // self.config.summary_every > (now - 1) // self.config.summary_every:
                    bar.write(self.summary_line(start, done_at_start))
            while self._maybe_update(final=finished() >= budget):
                pass
        finally:
            bar.close()
            self.executor.shutdown()
        return self.finalize(start, done_at_start)

    def _prepare_warm_start(self) -> None:
        """Trains the proxy's warm-start backbone before the workers start, in a process of
        its own, so its progress shows up front and workers find it cached."""
        cfg = self.config.proxy
        if self.config.evaluator != "proxy" or cfg.init_checkpoint or not cfg.warm_start_steps:
            return
        from mnas_tf.warm_start import cached_checkpoint
        if cached_checkpoint(cfg):
            return
        context = multiprocessing.get_context("spawn")
        with futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            error = pool.submit(_warm_start_in_process, self.config.to_dict(),
                                os.path.join(self.out_dir, "logs", "warm_start.log")).result()
        if error:
            raise SearchError(error)

    def summary_line(self, start: float, done_at_start: int) -> str:
        counts = self.store.counts()
        done = counts[trial_store.DONE] + counts[trial_store.FAILED]
        hours = (time.perf_counter() - start) / 3600
        rate = (done - done_at_start) / hours if hours > 0 else 0.0
        best = self.best()
        s = self.state
        metric = self._metric_name()
        best_text = (f"best reward {best.reward:.4f} (trial {best.id}, {metric} {best.map:.4f}, "
                     f"{_fmt(best.latency_ms)} ms)" if best else "best reward -")
        return (f"[search] {counts[trial_store.DONE]} done / {counts[trial_store.RUNNING]} "
                f"running / {counts[trial_store.FAILED]} failed | {rate:.1f} children/h | "
                f"{best_text} | entropy {_fmt(s.last_entropy)} | baseline {_fmt(s.baseline)}")

    def _metric_name(self) -> str:
        """What the `map` column holds: the proxy's scoring metric (or the toy score)."""
        return "toy score" if self.config.evaluator == "toy" else self.config.proxy.metric

    def best(self):
        scored = [t for t in self.store.trials(trial_store.DONE) if t.reward is not None]
        return max(scored, key=lambda t: t.reward) if scored else None

    def finalize(self, start: float, done_at_start: int) -> dict:
        from search.frontier import write_frontier
        frontier = write_frontier(self.store.trials(trial_store.DONE), self.out_dir,
                                  self.config.reward.target_ms, self._metric_name())
        best = self.best()
        summary = {"out": self.out_dir, "database": self.store.path,
                   "counts": self.store.counts(), "updates": self.state.updates,
                   "frontier": len(frontier),
                   "best": None if best is None else {
                       "trial": best.id, "reward": best.reward, "map": best.map,
                       "metric": self._metric_name(),
                       "latency_ms": best.latency_ms, "arch": best.arch},
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

    def _log_child(self, trial) -> None:
        if trial.status == trial_store.DONE:
            self._scalar("child/map", trial.map, trial.id)
            self._scalar("child/latency_ms", trial.latency_ms, trial.id)
            self._scalar("child/reward", trial.reward, trial.id)


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4g}"


def _warm_start_in_process(config: dict, log: Optional[str] = None) -> Optional[str]:
    """Builds the warm-start checkpoint in a spawned process; returns an error or None."""
    from mnas_tf.warm_start import WarmStartError
    from search.child import ChildEvaluator
    evaluator = ChildEvaluator(config)
    try:
        with console.trial_log(log):
            evaluator.engine().with_warm_start(evaluator.config.proxy)
    except WarmStartError as e:
        return f"{e}; lower proxy.learning_rate or set proxy.init_checkpoint"
    except Exception as e:  # pylint: disable=broad-except  (one line for the user)
        return f"warm start failed: {type(e).__name__}: {e}"
    return None


def latency_predictor(config: SearchConfig, space, progress: bool):
    """arch dict -> predicted ms, from the device's table. The table is built for the
    configured space first unless it already holds every op key of that space at this
    input size and its constant was calibrated on it (an exact, measurement-free check);
    a table built for other spaces only gets the keys it lacks measured."""
    from latency.lut import build, device_table, load_shape, table_ready
    from latency.measure import get_backend
    from latency.table import LatencyPredictor
    from mnas_tf.arch import MnasFPNSpec
    cfg = config.latency
    params, shape = load_shape(cfg.experiment, (cfg.input_size, cfg.input_size), cfg.quant)
    kwargs = {"serial": cfg.serial, "benchmark_binary": cfg.benchmark_binary} \
        if cfg.backend == "android" else {}
    backend = get_backend(cfg.backend, **kwargs)
    # a table whose speed probe no longer matches this device is rebuilt, never reused
    table = device_table(backend, cfg.threads, cfg.table_dir, cfg.quant, rebuild=True)
    if not table_ready(table, shape, space):
        if progress:
            print(f"[search] building the {cfg.backend} latency table for space "
                  f"{config.space!r} at {cfg.input_size}x{cfg.input_size} (once per device "
                  f"and space; resumable): {table.path}", file=sys.stderr)
        build(table, params, shape, backend, cfg.threads, progress=progress, space=space)
    predictor = LatencyPredictor(table, shape)
    return lambda arch: predictor.predict(MnasFPNSpec.from_dict(arch)).total_ms


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m search.controller", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML over the embedded default (a path or the name "
                                         "of one in configs/search/)")
    parser.add_argument("--out", help="output directory (default runs/search_SPACE_seedS)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the search in --out after a stop or a kill")
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    parser.add_argument("--address", help="Ray cluster address (default: start a local one)")
    parser.add_argument("--budget", type=int, help="number of children (overrides config)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    console.add_flag(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(console.cli(argv))
    from latency.errors import LatencyError
    from mnas_tf.arch import ArchitectureError
    from search.executors import ExecutorError
    new_db = None
    try:
        overrides = {"budget": args.budget} if args.budget is not None else {}
        config = load_config(args.config, overrides)
        out = args.out or default_out_dir(config)
        if not args.resume and not os.path.exists(os.path.join(out, trial_store.DB_NAME)):
            new_db = os.path.join(out, trial_store.DB_NAME)
        search = Search(config, out, args.resume, args.executor, args.address,
                        progress=not args.quiet)
        summary = search.run()
    except (SearchConfigError, SearchError, LatencyError, ArchitectureError,
            ExecutorError) as e:
        if new_db:  # a start that failed before any child must not block the rerun
            trial_store.discard_unused(new_db)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: everything finished so far is saved; continue with --resume",
              file=sys.stderr)
        return 130
    print(json.dumps(summary["best"] and {k: v for k, v in summary["best"].items()
                                          if k != "arch"}))
    written = [name for name in (trial_store.DB_NAME, "frontier.json", "frontier.png", "summary.json",
                                 "tensorboard/", "logs/")
               if os.path.exists(os.path.join(summary["out"], name.rstrip("/")))]
    print(f"results: {summary['out']} ({', '.join(written)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
