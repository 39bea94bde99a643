"""Where children train: in local worker processes or as Ray actors.

Both keep a fixed set of workers, each holding one `ChildEvaluator` (its data pipelines
are built once), accept more submissions than workers (the queue is the search's
in-flight set), and hand back finished children as they complete. The driver stays the
only writer of the search database.

The toy evaluator needs no TensorFlow and runs inline in the driver process.
"""

from __future__ import annotations

import collections
import concurrent.futures as futures
import multiprocessing
import os
from typing import Optional

from mnas_tf import console

Result = tuple[int, dict]  # (trial id, evaluation)

_WORKER = None
_LOG_DIR: Optional[str] = None


def _exit_with_parent() -> None:
    """Ends this worker as soon as the driver process is gone (kill -9 included), so no
    worker is orphaned holding its memory. A spawned child's `parent_process().sentinel`
    becomes ready when the parent exits; the pool's own pipes do not tell (the worker keeps
    their other ends open itself)."""
    import os
    import threading
    from multiprocessing import connection, parent_process

    parent = parent_process()
    if parent is None:
        return

    def watch():
        connection.wait([parent.sentinel])
        os._exit(3)  # pylint: disable=protected-access

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def trial_log_path(log_dir: Optional[str], trial_id: int) -> Optional[str]:
    """OUT/logs/trial_N.log: everything a worker printed while it evaluated trial N."""
    return os.path.join(log_dir, f"trial_{trial_id}.log") if log_dir else None


def _init_worker(config: dict, log_dir: Optional[str] = None,
                 out_dir: Optional[str] = None) -> None:
    global _WORKER, _LOG_DIR  # pylint: disable=global-statement
    _exit_with_parent()
    from search.evaluators import build_evaluator
    _WORKER, _LOG_DIR = build_evaluator(config, out_dir), log_dir


def _evaluate_in_worker(trial_id: int, arch: dict, seed: int) -> dict:
    with console.trial_log(trial_log_path(_LOG_DIR, trial_id)):
        return _WORKER.evaluate(arch, seed)


class InlineExecutor:
    """Evaluates on the driver's thread, one child per `wait`: deterministic and cheap."""

    def __init__(self, config: dict):
        from search.evaluators import build_evaluator
        self._evaluator = build_evaluator(config)
        self._queue: collections.deque = collections.deque()

    def submit(self, trial_id: int, arch: dict, seed: int) -> None:
        self._queue.append((trial_id, arch, seed))

    def running(self) -> int:
        return len(self._queue)

    def wait(self) -> list[Result]:
        trial_id, arch, seed = self._queue.popleft()
        return [(trial_id, self._evaluator.evaluate(arch, seed))]

    def shutdown(self) -> None:
        self._queue.clear()


class LocalExecutor:
    """A pool of spawned worker processes (TF state never leaks between driver and child;
    a child that crashes its process is reported as failed)."""

    def __init__(self, config: dict, workers: int, log_dir: Optional[str] = None,
                 out_dir: Optional[str] = None):
        context = multiprocessing.get_context("spawn")
        self._pool = futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker,
            initargs=(config, log_dir, out_dir))
        self._futures: dict[futures.Future, int] = {}

    def submit(self, trial_id: int, arch: dict, seed: int) -> None:
        future = self._pool.submit(_evaluate_in_worker, trial_id, arch, seed)
        self._futures[future] = trial_id

    def running(self) -> int:
        return len(self._futures)

    def wait(self) -> list[Result]:
        done, _ = futures.wait(list(self._futures), return_when=futures.FIRST_COMPLETED)
        results = []
        for future in sorted(done, key=self._futures.get):
            trial_id = self._futures.pop(future)
            try:
                results.append((trial_id, future.result()))
            except Exception as e:  # pylint: disable=broad-except  (a worker died)
                results.append((trial_id, {"status": "failed", "metrics": {}, "timings": {},
                                           "error": f"worker crashed: {type(e).__name__}: {e}"}))
        return results

    def shutdown(self) -> None:
        """Stops the workers now: every finished child is already recorded, and a child
        still training is requeued by --resume."""
        processes = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=10)


class RayExecutor:
    """One Ray actor per worker (one GPU each where the cluster has GPUs)."""

    def __init__(self, config: dict, workers: int, address: Optional[str] = None,
                 log_dir: Optional[str] = None):
        import ray
        if not ray.is_initialized():
            if address:
                check_reachable(address)
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=max(workers, 1), include_dashboard=False,
                         log_to_driver=False)
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        actor = ray.remote(num_cpus=1, num_gpus=gpus)(_RayChild)
        self._ray = ray
        self._idle = [actor.remote(config, log_dir) for _ in range(workers)]
        self._queue: collections.deque = collections.deque()
        self._refs: dict = {}  # object ref -> (trial id, actor)

    def submit(self, trial_id: int, arch: dict, seed: int) -> None:
        self._queue.append((trial_id, arch, seed))
        self._dispatch()

    def _dispatch(self) -> None:
        while self._idle and self._queue:
            trial_id, arch, seed = self._queue.popleft()
            worker = self._idle.pop()
            self._refs[worker.evaluate.remote(trial_id, arch, seed)] = (trial_id, worker)

    def running(self) -> int:
        return len(self._refs) + len(self._queue)

    def wait(self) -> list[Result]:
        ready, _ = self._ray.wait(list(self._refs), num_returns=1)
        results = []
        for ref in ready:
            trial_id, worker = self._refs.pop(ref)
            try:
                results.append((trial_id, self._ray.get(ref)))
            except Exception as e:  # pylint: disable=broad-except  (actor died)
                results.append((trial_id, {"status": "failed", "metrics": {}, "timings": {},
                                           "error": f"ray actor failed: {type(e).__name__}"}))
            self._idle.append(worker)
        self._dispatch()
        return results

    def shutdown(self) -> None:
        self._ray.shutdown()


class ExecutorError(RuntimeError):
    """The workers cannot be reached or started; the message is one line for the user."""


def check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fails fast (ExecutorError) when nothing listens at a Ray cluster's HOST:PORT:
    `ray.init` itself retries such an address for minutes with warnings and no error.
    `auto` and Ray Client (`ray://`) addresses are left to Ray."""
    import socket
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError(f"--address {address!r} is not HOST:PORT (e.g. 10.0.0.1:6379, "
                            f"the head's 'ray start --head' address)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        raise ExecutorError(f"no Ray cluster answers at {address} ({e.strerror or e}); start "
                            f"one with 'ray start --head --port {port}' on that machine, or "
                            f"drop --address to start a local one") from None


class _RayChild:
    def __init__(self, config: dict, log_dir: Optional[str] = None):
        from search.evaluators import build_evaluator
        self._evaluator, self._log_dir = build_evaluator(config), log_dir

    def evaluate(self, trial_id: int, arch: dict, seed: int) -> dict:
        with console.trial_log(trial_log_path(self._log_dir, trial_id)):
            return self._evaluator.evaluate(arch, seed)


def make_executor(kind: str, config, address: Optional[str] = None,
                  log_dir: Optional[str] = None, out_dir: Optional[str] = None):
    """`log_dir`: where workers write trial_N.log (the toy evaluator runs inline, silent)."""
    data = config.to_dict()
    if kind == "ray":
        return RayExecutor(data, config.workers, address, log_dir)
    if config.evaluator == "toy":
        return InlineExecutor(data)
    return LocalExecutor(data, config.workers, log_dir, out_dir)
