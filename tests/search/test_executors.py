"""Executors tell a dead worker from a failing child: a worker process, Ray actor or Ray
node that dies mid-child gives a "lost" result, and the executor replaces the worker; a
whole search on a two-node Ray cluster re-runs the child whose node died."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from search import controller as search_controller
from search.executors import InlineExecutor, LocalExecutor, RayExecutor, make_executor
from search.store import DONE, TrialStore

REPO = Path(__file__).resolve().parents[2]


def _config(**overrides):
    from search.config import load_config
    data = {"evaluator": "toy", "latency": {"source": "none"}, "toy": {"delay_s": 5},
            "workers": 1, "in_flight": 1}
    data.update(overrides)
    return load_config(overrides=data)


def _arch(seed=0):
    from mnas_tf.spaces import canonical_dict, get_space
    return canonical_dict(get_space("mnasfpn").sample(np.random.default_rng(seed)))


def _until(probe, timeout_s, what):
    """Polls `probe` until it returns something truthy."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


def test_make_executor_runs_sleeping_toys_in_workers():
    assert isinstance(make_executor("local", _config(toy={"delay_s": 0})), InlineExecutor)
    executor = make_executor("local", _config())
    try:
        assert isinstance(executor, LocalExecutor)
    finally:
        executor.shutdown()


@pytest.mark.timeout(300)
def test_local_worker_killed_mid_child_is_lost_then_replaced():
    executor = make_executor("local", _config(toy={"delay_s": 4}))
    try:
        executor.submit(1, _arch(), 0)
        pid = _until(lambda: executor.started().get(1), 120, "the worker to begin trial 1")
        assert _parent(pid) == os.getpid()  # a worker process of this executor
        os.kill(pid, signal.SIGKILL)
        start = time.time()
        [(trial, result)] = executor.wait()
        assert time.time() - start < 3  # found dead, not waited out (the toy sleeps 4 s)
        assert trial == 1 and result == {
            "status": "lost", "metrics": {}, "timings": {},
            "error": f"worker process {pid} died mid-child (killed by SIGKILL)"}
        executor.submit(2, {"not": "an architecture"}, 0)  # the child's fault: failed
        [(trial, result)] = executor.wait()
        assert trial == 2 and result["status"] == "failed"
        executor.submit(3, _arch(), 0)
        [(trial, result)] = executor.wait()
        assert trial == 3 and result["status"] == "done"
        idle = result["timings"]["worker_pid"]
        assert idle not in (pid, os.getpid())
        os.kill(idle, signal.SIGKILL)  # dies between children: the next submit recovers
        _until(lambda: not os.path.exists(f"/proc/{idle}"), 30, "the pool to reap it")
        executor.submit(4, _arch(), 0)
        [(trial, result)] = executor.wait()
        assert trial == 4 and result["status"] == "done", result
    finally:
        executor.shutdown()


DRIVER = """
import sys, time
import numpy as np
from mnas_tf.spaces import canonical_dict, get_space
from search.config import load_config
from search.executors import make_executor
config = load_config(overrides={"evaluator": "toy", "latency": {"source": "none"},
                                "toy": {"delay_s": 60}, "workers": 1, "in_flight": 1})
executor = make_executor("local", config)
executor.submit(1, canonical_dict(get_space("mnasfpn").sample(np.random.default_rng(0))), 0)
while not executor.started():
    time.sleep(0.1)
print(executor.started()[1], flush=True)
time.sleep(600)
"""


@pytest.mark.timeout(300)
def test_local_workers_exit_with_their_driver():
    """A driver killed with SIGKILL leaves no worker holding its memory."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO),
                                                         os.environ.get("PYTHONPATH", "")]))
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE,
                              text=True, env=env)
    try:
        worker = int(driver.stdout.readline())
        assert _parent(worker) == driver.pid
    finally:
        driver.kill()
        driver.wait()
    _until(lambda: not os.path.exists(f"/proc/{worker}") or _zombie(worker), 30,
           f"worker {worker} to exit with its driver")


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.timeout(300)
def test_local_child_queued_behind_a_killed_one_is_resubmitted():
    executor = make_executor("local", _config(toy={"delay_s": 3}, in_flight=2))
    try:
        executor.submit(1, _arch(), 0)
        executor.submit(2, _arch(1), 0)  # queued: one worker
        pid = _until(lambda: executor.started().get(1), 120, "the worker to begin trial 1")
        os.kill(pid, signal.SIGKILL)
        [(trial, result)] = executor.wait()
        assert trial == 1 and result["status"] == "lost"
        assert executor.running() == 1  # trial 2, resubmitted, not reported
        [(trial, result)] = executor.wait()
        assert trial == 2 and result["status"] == "done"
    finally:
        executor.shutdown()


def test_unreachable_ray_address_fails_fast_with_one_line():
    pytest.importorskip("ray")
    from search.executors import ExecutorError
    for address, needle in (("127.0.0.1:1", "no Ray cluster answers at 127.0.0.1:1"),
                            ("head-without-port", "is not HOST:PORT")):
        start = time.time()
        with pytest.raises(ExecutorError) as error:
            make_executor("ray", _config(), address=address)
        assert time.time() - start < 30
        assert needle in str(error.value) and "\n" not in str(error.value)


# ------------------------------------------------------------ a two-node Ray cluster
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session(sid):
    """Pids of the processes in session `sid`: a `ray start --block` started with its own
    session, and everything it started (its raylet's workers too)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry))
    return pids


def _kill_session(sid, sig=signal.SIGKILL):
    for pid in _session(sid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _evaluating(sid):
    """A process of session `sid` that is running a child: Ray titles an actor's process
    `ray::CLASS.METHOD` while the method runs."""
    for pid in _session(sid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::_RayChild.evaluate"):
            return pid
    return None


@pytest.fixture
def two_nodes(monkeypatch):
    """A head and a second node on this machine, one CPU each (the second node takes the
    head's temp dir, which is short: Unix socket paths are). The head's health checks are
    tightened so a node that goes silent is declared dead in seconds; a killed node is
    found sooner anyway, its connections reset. Token auth is off: `ray start --head`
    turns it on when ~/.ray/auth_token exists, and a node or driver whose RAY_AUTH_MODE is
    unset would then be refused. Stopped by the pids of the sessions started here, not
    `ray stop`, which stops every Ray on the machine."""
    pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="r14", dir="/tmp")
    port = _free_port()
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_health_check_period_ms="500",
               RAY_health_check_timeout_ms="1000", RAY_health_check_failure_threshold="2",
               RAY_health_check_initial_delay_ms="0",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    common = ["--num-cpus", "1", "--object-store-memory", str(80 * 2**20), "--block",
              "--disable-usage-stats"]
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts", "start"]
    started = []

    def start(args, name):
        log = open(os.path.join(temp, f"{name}.out"), "w")
        started.append(subprocess.Popen(
            ray_cli + args + common + ["--dashboard-agent-listen-port", str(_free_port())],
            env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT))
        return started[-1]

    try:
        start(["--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", temp],
              "head")

        def head_up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False
        _until(head_up, 120, "the Ray head")
        node = start(["--address", f"127.0.0.1:{port}", "--resources", '{"node2": 1}'],
                     "node2")
        yield f"127.0.0.1:{port}", started[0], node
    finally:
        import ray
        if ray.is_initialized():
            ray.shutdown()
        for process in reversed(started):
            _kill_session(process.pid, signal.SIGTERM)
        for sig, grace_s in ((signal.SIGKILL, 2), (None, 10)):
            deadline = time.time() + grace_s
            while time.time() < deadline and any(_session(p.pid) for p in started):
                time.sleep(0.2)
            for process in started:
                if sig:
                    _kill_session(process.pid, sig)
        for process in started:
            process.wait(timeout=10)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.timeout(600)
def test_ray_node_killed_mid_child_is_lost_and_the_child_reruns(two_nodes):
    import ray
    address, head, node = two_nodes
    ray.init(address=address, log_to_driver=False)
    _until(lambda: len([n for n in ray.nodes() if n["Alive"]]) == 2, 120, "the second node")
    executor = make_executor("ray", _config(toy={"delay_s": 6}, workers=2, in_flight=2),
                             address=address)
    assert isinstance(executor, RayExecutor)
    try:
        executor.submit(1, _arch(), 0)
        executor.submit(2, _arch(1), 0)
        arrivals = []

        def collect():  # the driver's loop: blocked in wait() when the node dies
            for _ in range(2):
                arrivals.extend((time.time(), t, r) for t, r in executor.wait())
        collector = threading.Thread(target=collect, daemon=True)
        collector.start()
        _until(lambda: _evaluating(head.pid), 120, "a child on the head")
        _until(lambda: _evaluating(node.pid), 120, "a child on the second node")
        _kill_session(node.pid)  # the whole node: raylet, agents, the actor's worker
        killed = time.time()
        collector.join(timeout=120)
        assert not collector.is_alive(), arrivals
        results = {t: r for _, t, r in arrivals}
        lost_after = min(at for at, _, r in arrivals if r["status"] == "lost") - killed
        statuses = sorted(r["status"] for r in results.values())
        assert statuses == ["done", "lost"], results
        [(lost_id, lost)] = [(t, r) for t, r in results.items() if r["status"] == "lost"]
        [done] = [r for r in results.values() if r["status"] == "done"]
        print(f"lost {lost_after:.1f} s after the kill")
        assert lost_after < 15, lost_after  # found dead within seconds
        assert lost["error"].startswith("Ray actor (pid ") and "died mid-child" in lost["error"]
        assert "\n" not in lost["error"] and (lost["metrics"], lost["timings"]) == ({}, {})
        executor.submit(lost_id, _arch(lost_id - 1), 0)  # the driver re-queues it
        [(trial, rerun)] = executor.wait()
        assert trial == lost_id and rerun["status"] == "done"
        # on the head's actor: the replacement has no CPU to start on
        assert rerun["timings"]["worker_pid"] == done["timings"]["worker_pid"]
    finally:
        executor.shutdown()


@pytest.mark.timeout(600)
def test_search_on_two_nodes_reruns_the_child_whose_node_died(two_nodes, tmp_path):
    """A whole search through the CLI (a driver process of its own, as a user starts it)
    on the two-node cluster: the second node dies mid-child, the search still finishes
    its budget, and only that child ran twice, on the head's actor."""
    address, head, node = two_nodes
    out, budget = tmp_path / "search", 6
    env = dict(os.environ, RAY_AUTH_MODE="disabled",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    sets = ["evaluator=toy", "toy.delay_s=4", "strategy=random", "workers=2", "in_flight=2",
            f"budget={budget}", "latency.source=none",
            "reference_architectures=[]"]  # the node's death is for a child
    command = [sys.executable, "-m", "search.controller", "--executor", "ray",
               "--address", address, "--out", str(out)]
    for s in sets:
        command += ["--set", s]
    log_path = tmp_path / "driver.log"
    with open(log_path, "w") as log:
        driver = subprocess.Popen(command, cwd=REPO, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        on_head = _until(lambda: _evaluating(head.pid), 180, "a child on the head's actor")
        on_node = _until(lambda: _evaluating(node.pid), 180, "a child on the second node")
        _kill_session(node.pid)  # the whole node: raylet, agents, the actor's worker
        killed = time.time()
        code = driver.wait(timeout=300)
        print(f"search finished {time.time() - killed:.1f} s after the kill")
    finally:
        if driver.poll() is None:
            _kill_session(driver.pid)
            driver.wait(timeout=30)
    assert code == 0, log_path.read_text()[-3000:]

    from search.store import DONE, TrialStore
    store = TrialStore.open_existing(str(out / "search.sqlite"))
    trials = store.trials()
    store.close()
    assert len(trials) == budget and all(t.status == DONE for t in trials), trials
    retried = [t for t in trials if "retries" in t.extra]
    assert len(retried) == 1, [(t.id, t.extra) for t in trials]
    [child] = retried
    [loss] = child.extra["retries"]
    assert loss["error"].startswith(f"Ray actor (pid {on_node} ") and \
        "died mid-child" in loss["error"], loss
    print(f"lost {loss['at'] - killed:.1f} s after the kill")
    assert loss["at"] - killed < 15  # found dead within seconds
    assert child.attempts == 2
    assert child.timings["worker_pid"] == on_head  # rerun on the head's actor
    copies = [t for t in trials if "reused_from" in t.extra]
    for t in trials:
        if t is not child and t not in copies:
            assert t.attempts == 1 and "retries" not in t.extra
    evaluated = [t.arch_hash for t in trials if t not in copies]
    assert len(evaluated) == len(set(evaluated))  # no architecture trained twice
    by_id = {t.id: t for t in trials}
    for t in copies:
        assert by_id[t.extra["reused_from"]].arch_hash == t.arch_hash
    ran = [t for t in trials if t.id not in {c.id for c in copies}]
    assert {t.timings["worker_pid"] for t in ran} <= {on_head, on_node}
    # after the kill, the head's actor ran everything: the replacement finds no free CPU
    assert all(t.timings["worker_pid"] == on_head for t in ran if t.finished > killed)
    log = log_path.read_text()
    assert f"child {child.id} lost its worker (Ray actor (pid {on_node} " in log, log
    assert "retry 1/2" in log, log


# ------------------------------------------------------------ a local Ray instance
# (here, not in test_controller.py: Ray tests share one xdist worker and never overlap)
def _toy_config(tmp_path, **extra):
    data = {"evaluator": "toy", "budget": 24, "in_flight": 3,
            "latency": {"source": "none"}, **extra}
    path = tmp_path / "toy.yaml"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.timeout(600)
def test_ray_executor_on_a_local_instance(tmp_path):
    ray = pytest.importorskip("ray")
    config = _toy_config(tmp_path, budget=8, workers=2, in_flight=3)
    out = tmp_path / "ray"
    try:
        assert search_controller.main(["--config", config, "--out", str(out), "--executor",
                                       "ray", "--quiet"]) == 0
    finally:
        if ray.is_initialized():
            ray.shutdown()
    trials = TrialStore.open_existing(str(out / "search.sqlite")).trials()
    assert len(trials) == 8 and all(t.status == DONE for t in trials)
    workers = {t.timings["worker_pid"] for t in trials}
    assert os.getpid() not in workers and 1 <= len(workers) <= 2  # ran in the Ray actors


