"""Where children train: in local worker processes, as Ray actors, or inline.

Each keeps a fixed set of workers, each holding one evaluator (its data pipelines are
built once), accepts more submissions than workers (the queue is the search's in-flight
set), and hands back finished children as they complete. The driver stays the only
writer of the search database.

A worker that dies mid-child (a killed process, a dead Ray actor or node) is not the
child's fault: its child comes back as status "lost" (the driver re-queues it) and the
executor replaces the worker, so later submissions still run. A child that fails inside
its evaluator comes back "failed", as the evaluator reports it.
"""

from __future__ import annotations

import collections
import concurrent.futures as futures
import multiprocessing
import os
import signal
from concurrent.futures.process import BrokenProcessPool
from typing import Optional

from mnas_tf import console

Result = tuple[int, dict]  # (trial id, evaluation)

_WORKER = None
_LOG_DIR: Optional[str] = None
_STARTED = None  # the local pool's queue of (trial id, pid): which child began where


def _exit_with_parent() -> None:
    """Ends this worker as soon as the driver process is gone (kill -9 included), so no
    worker is orphaned holding its memory. A spawned child's `parent_process().sentinel`
    becomes ready when the parent exits; the pool's own pipes do not tell (the worker keeps
    their other ends open itself)."""
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


def lost(error: str) -> dict:
    """The result of a child whose worker died under it (the driver re-queues it)."""
    return {"status": "lost", "error": error, "metrics": {}, "timings": {}}


def _failed(error: str) -> dict:
    return {"status": "failed", "error": error, "metrics": {}, "timings": {}}


def _one_line(e: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`: Ray's errors span dozens of lines."""
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
    return f"{type(e).__name__}: {first}"[:limit] if first else type(e).__name__


def _init_worker(config: dict, log_dir: Optional[str] = None, out_dir: Optional[str] = None,
                 started=None) -> None:
    global _WORKER, _LOG_DIR, _STARTED  # pylint: disable=global-statement
    _exit_with_parent()
    from search.evaluators import build_evaluator
    _WORKER, _LOG_DIR, _STARTED = build_evaluator(config, out_dir), log_dir, started


def _evaluate_in_worker(trial_id: int, arch: dict, seed: int) -> dict:
    if _STARTED is not None:  # before the child: a death from here on is "mid-child"
        _STARTED.put((trial_id, os.getpid()))
    with console.trial_log(trial_log_path(_LOG_DIR, trial_id)):
        return _WORKER.evaluate(arch, seed)


class InlineExecutor:
    """Evaluates on the driver's thread, one child per `wait`: deterministic and cheap."""

    def __init__(self, config: dict, out_dir: Optional[str] = None):
        from search.evaluators import build_evaluator
        self._evaluator = build_evaluator(config, out_dir)
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


def _death(exitcode: Optional[int]) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class LocalExecutor:
    """A pool of spawned worker processes (TF state never leaks between driver and child).

    When a worker dies, Python's pool breaks and stops ALL its workers, so every child
    that had begun in it comes back "lost" (the dead worker's and the ones stopped with
    it, each error says which); children queued but not yet begun are resubmitted, in
    order, to a fresh pool without being reported. Only when no child had begun (e.g. a
    worker died building its evaluator) are the queued ones reported lost too, so a worker
    that can never start is bounded by the driver's retry limit, not retried forever."""

    def __init__(self, config: dict, workers: int, log_dir: Optional[str] = None,
                 out_dir: Optional[str] = None):
        self._context = multiprocessing.get_context("spawn")
        self._workers, self._args = workers, (config, log_dir, out_dir)
        self._jobs: dict[futures.Future, tuple[int, dict, int]] = {}
        self._started: dict[int, int] = {}  # trial id -> pid of the worker it began on
        self._ready: list[Result] = []  # found while recovering, for the next wait()
        self._new_pool()

    def _new_pool(self) -> None:
        self._messages = self._context.SimpleQueue()
        self._pool = futures.ProcessPoolExecutor(
            max_workers=self._workers, mp_context=self._context, initializer=_init_worker,
            initargs=(*self._args, self._messages))

    def submit(self, trial_id: int, arch: dict, seed: int) -> None:
        try:
            future = self._pool.submit(_evaluate_in_worker, trial_id, arch, seed)
        except BrokenProcessPool:  # a worker died since the last wait
            self._recover()
            future = self._pool.submit(_evaluate_in_worker, trial_id, arch, seed)
        self._jobs[future] = (trial_id, arch, seed)

    def running(self) -> int:
        return len(self._jobs) + len(self._ready)

    def started(self) -> dict[int, int]:
        """trial id -> pid of the worker process evaluating it, for each child begun."""
        self._drain()
        return dict(self._started)

    def _drain(self) -> None:
        while not self._messages.empty():
            trial_id, pid = self._messages.get()
            if any(job[0] == trial_id for job in self._jobs.values()):
                self._started[trial_id] = pid

    def wait(self) -> list[Result]:
        while not self._ready and self._jobs:
            done, _ = futures.wait(list(self._jobs), return_when=futures.FIRST_COMPLETED)
            self._drain()
            if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                self._recover()
                continue
            for future in sorted(done, key=lambda f: self._jobs[f][0]):
                trial_id = self._jobs.pop(future)[0]
                self._started.pop(trial_id, None)
                try:
                    self._ready.append((trial_id, future.result()))
                except Exception as e:  # pylint: disable=broad-except  (an unpicklable result)
                    self._ready.append((trial_id, _failed(f"child raised in its worker: "
                                                          f"{_one_line(e)}")))
        results, self._ready = self._ready, []
        return results

    def _recover(self) -> None:
        """A worker died: the broken pool fails every job at once. Reports the begun
        ones lost (in `_ready`), replaces the pool and resubmits the rest."""
        processes = dict(getattr(self._pool, "_processes", None) or {})
        futures.wait(list(self._jobs), timeout=60)
        self._drain()
        self._close(processes)
        codes = {pid: p.exitcode for pid, p in processes.items()}
        # the pool stops the survivors with SIGTERM; the one that broke it died otherwise
        dead = [pid for pid, code in codes.items()
                if code is not None and code != -signal.SIGTERM] or list(codes)
        culprit = (f"worker process {dead[0]} ({_death(codes[dead[0]])})" if dead
                   else "a worker process")
        jobs, self._jobs = self._jobs, {}
        begun = {trial_id for trial_id, _, _ in jobs.values() if trial_id in self._started}
        results, resubmit = self._ready, []
        for future, (trial_id, arch, seed) in sorted(jobs.items(), key=lambda j: j[1][0]):
            error = future.exception() if future.done() else TimeoutError("no answer")
            pid = self._started.pop(trial_id, None)
            if error is None:
                results.append((trial_id, future.result()))
            elif not isinstance(error, (BrokenProcessPool, TimeoutError)):
                results.append((trial_id, _failed(f"child raised in its worker: "
                                                  f"{_one_line(error)}")))
            elif pid is not None and pid in dead:
                results.append((trial_id, lost(f"worker process {pid} died mid-child "
                                               f"({_death(codes.get(pid))})")))
            elif pid is not None:
                results.append((trial_id, lost(f"worker process {pid} was stopped mid-child "
                                               f"when {culprit} died and broke the pool")))
            elif begun:
                resubmit.append((trial_id, arch, seed))
            else:
                results.append((trial_id, lost(f"{culprit} died before the child began")))
        self._new_pool()
        for job in resubmit:
            self.submit(*job)

    def _close(self, processes: Optional[dict] = None) -> None:
        processes = list((processes or getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=10)
        self._messages.close()

    def shutdown(self) -> None:
        """Stops the workers now: every finished child is already recorded, and a child
        still training is requeued by --resume."""
        self._close()
        self._jobs.clear()
        self._ready.clear()


def _ray_lost_errors() -> tuple:
    """What `ray.get` raises when the worker, not the child, failed: the actor or its
    node died (or cannot be reached), or the driver's own raylet is gone."""
    from ray import exceptions as rx
    return tuple(getattr(rx, name) for name in (
        "RayActorError", "NodeDiedError", "WorkerCrashedError", "ObjectLostError",
        "LocalRayletDiedError") if hasattr(rx, name))


def _join_error(address: str, error: BaseException) -> str:
    """One line for a failed `ray.init(address)`, with the fix when Ray's token auth (on
    by default for `ray start --head` where a token exists) refused this driver. Ray puts
    the real cause in a message's text, not in `__cause__`."""
    chain, e = [], error
    while e is not None:
        chain.append(e)
        e = e.__cause__
    if any("AuthenticationError" in str(e) or "InvalidAuthToken" in str(e) for e in chain):
        return (f"the Ray cluster at {address} refused this driver's token: set "
                f"RAY_AUTH_MODE=token and give this machine the head's token "
                f"(~/.ray/auth_token or RAY_AUTH_TOKEN), or start the cluster with "
                f"RAY_AUTH_MODE=disabled on a trusted network")
    return f"cannot join the Ray cluster at {address}: {_one_line(chain[-1], 200)}"


def _actor_key(actor) -> str:
    return actor._actor_id.hex()  # pylint: disable=protected-access


class RayExecutor:
    """One Ray actor per worker (one GPU each where the cluster has GPUs).

    Children go only to actors that have started, so a replacement that waits for
    resources (its node died, none is free) holds no child while a live actor is idle.
    A dead actor's child comes back "lost" and the actor is replaced by a new one, which
    Ray schedules wherever resources remain (or on a node that joins later)."""

    def __init__(self, config: dict, workers: int, address: Optional[str] = None,
                 log_dir: Optional[str] = None, out_dir: Optional[str] = None):
        import ray
        if not ray.is_initialized():
            if address:
                check_reachable(address)
                try:
                    ray.init(address=address, log_to_driver=False)
                except ConnectionError as e:  # e.g. the cluster wants a token this lacks
                    raise ExecutorError(_join_error(address, e)) from None
            else:
                # "local": a new instance even where `ray start` left a cluster running
                ray.init(address="local", num_cpus=max(workers, 1), include_dashboard=False,
                         log_to_driver=False)
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        self._ray = ray
        self._actor = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=0)(_RayChild)
        self._args = (config, log_dir, out_dir)
        self._lost_errors = _ray_lost_errors()
        self._starting: dict = {}  # ready() ref -> actor not yet started
        self._idle: list = []
        self._where: dict = {}  # actor id -> "pid P on node N (IP)"
        self._queue: collections.deque = collections.deque()
        self._refs: dict = {}  # object ref -> (trial id, actor)
        self._start_failures, self._max_start_failures = 0, 2 * workers + 1
        for _ in range(workers):
            self._start_actor()

    def _start_actor(self) -> None:
        actor = self._actor.remote(*self._args)
        self._starting[actor.ready.remote()] = actor

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
        while self._refs or self._queue:
            ready, _ = self._ray.wait(list(self._refs) + list(self._starting), num_returns=1)
            if ready[0] in self._starting:
                self._actor_started(ready[0])
                self._dispatch()
                continue
            results = [self._collect(ready[0])]
            self._dispatch()
            return results
        return []

    def _actor_started(self, ref) -> None:
        actor = self._starting.pop(ref)
        try:
            self._where[_actor_key(actor)] = self._ray.get(ref)
        except Exception as e:  # pylint: disable=broad-except  (its __init__ raised, its node died)
            self._start_failures += 1
            if self._start_failures >= self._max_start_failures:
                raise ExecutorError(f"Ray workers fail to start ({self._start_failures} in a "
                                    f"row): {_one_line(e)}") from None
            self._start_actor()
            return
        self._start_failures = 0
        self._idle.append(actor)

    def _collect(self, ref) -> Result:
        trial_id, actor = self._refs.pop(ref)
        try:
            result = self._ray.get(ref)
        except self._ray.exceptions.RayTaskError as e:  # raised inside the child
            result = _failed(f"child raised in its Ray actor: {_one_line(e)}")
        except self._lost_errors as e:
            where = self._where.pop(_actor_key(actor), "unknown place")
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:  # pylint: disable=broad-except  (already gone)
                pass
            self._start_actor()
            return trial_id, lost(f"Ray actor ({where}) died mid-child: {_one_line(e, 200)}")
        except Exception as e:  # pylint: disable=broad-except
            result = _failed(f"ray.get failed: {_one_line(e)}")
        self._idle.append(actor)
        return trial_id, result

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
    def __init__(self, config: dict, log_dir: Optional[str] = None,
                 out_dir: Optional[str] = None):
        from search.evaluators import build_evaluator
        self._evaluator, self._log_dir = build_evaluator(config, out_dir), log_dir

    def ready(self) -> str:
        """Where this actor runs, for a lost child's error line."""
        import ray
        context = ray.get_runtime_context()
        return (f"pid {os.getpid()} on node {context.get_node_id()[:8]} "
                f"({ray.util.get_node_ip_address()})")

    def evaluate(self, trial_id: int, arch: dict, seed: int) -> dict:
        with console.trial_log(trial_log_path(self._log_dir, trial_id)):
            return self._evaluator.evaluate(arch, seed)


def make_executor(kind: str, config, address: Optional[str] = None,
                  log_dir: Optional[str] = None, out_dir: Optional[str] = None):
    """`log_dir`: where workers write trial_N.log; `out_dir`: the search's output folder,
    for the evaluator. `ray` runs every evaluator (toy too) in Ray actors; locally, an
    evaluator that `runs_inline` does, unless its toy children sleep (`toy.delay_s`),
    which stand in for training and so run in worker processes that can die."""
    from search.evaluators import runs_inline
    data = config.to_dict()
    if kind == "ray":
        return RayExecutor(data, config.workers, address, log_dir, out_dir)
    toy = getattr(config, "toy", None)
    if runs_inline(data) and not getattr(toy, "delay_s", 0) > 0:
        return InlineExecutor(data, out_dir)
    return LocalExecutor(data, config.workers, log_dir, out_dir)
