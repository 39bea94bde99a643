"""The search driver: config errors, reproducibility, resume after kill -9, Ray, and the
faults a demanding user tries: empty, truncated and unwritable stores, an unreachable Ray
address, and the policy consuming every finished child once."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from search import controller, retrain
from search.config import load_config
from search.store import DONE, FAILED, TrialStore

HERE = os.path.dirname(__file__)
TINY_PROXY = os.path.join(HERE, "configs", "tiny_proxy.yaml")


def _toy_config(tmp_path, update_every=4, **extra):
    data = {"evaluator": "toy", "budget": 24, "ppo": {"update_every": update_every},
            "in_flight": 3, "latency": {"source": "none"}, **extra}
    path = tmp_path / "toy.yaml"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("yaml_text, needle", [
    ("budgett: 3", "unknown key(s) budgett; valid keys are space, space_overrides, strategy"),
    ("reward: {target_ms: 0}", "reward.target_ms must be positive"),
    ("reward: {w: 0.3}", "reward.w must be negative"),
    ("budget: 0", "budget must be a positive integer"),
    ("reward: {kind: best}", "reward.kind 'best' is unknown; valid kinds are mnas"),
    ("space: fast", "unknown search space 'fast'"),
    ("latency: {sorce: lut}", "latency: unknown key(s) sorce; valid keys are source"),
    ("latency: {quant: int4}", "latency.quant 'int4' is unknown; valid: float32, int8"),
    ("proxy: {metric: mAP}", "metric 'mAP' is unknown; valid: AP, AP50"),
    ("proxy: {init_checkpoint: /nowhere/ckpt}", "proxy.init_checkpoint /nowhere/ckpt: no TF "
                                                "checkpoint there"),
    ("proxy: {warm_start_steps: 0}", "freeze_backbone needs init_checkpoint or "
                                     "warm_start_steps > 0"),
])
def test_config_errors_name_the_key_and_exit_2(tmp_path, capsys, yaml_text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    assert controller.main(["--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before anything started


def test_toy_search_is_reproducible_and_writes_its_outputs(tmp_path):
    config = _toy_config(tmp_path)
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert controller.main(["--config", config, "--out", str(out), "--quiet"]) == 0
        trials = TrialStore.open_existing(str(out / "search.sqlite")).trials()
        runs.append([(t.arch_hash, t.reward, round(t.log_prob, 6)) for t in trials])
        assert len(trials) == 24 and all(t.status == DONE for t in trials)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["updates"] == 6 and summary["best"]["reward"] == max(
            t.reward for t in trials)
        assert (out / "frontier.json").exists()
    assert runs[0] == runs[1]
    # a finished search is not overwritten, and resuming it with another config is refused
    assert controller.main(["--config", config, "--out", str(tmp_path / "a")]) == 2
    other = _toy_config(tmp_path, seed=5)
    assert controller.main(["--config", other, "--out", str(tmp_path / "a"), "--resume"]) == 2


def _counts(db):
    try:
        with sqlite3.connect(db) as c:
            return dict(c.execute("SELECT status, COUNT(*) FROM trials GROUP BY status"))
    except sqlite3.OperationalError:  # the file exists, its tables not yet
        return {}


@pytest.mark.timeout(900)
def _children(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


@pytest.mark.timeout(1200)
def test_resume_after_kill_loses_and_repeats_nothing(tmp_path, console_noise):
    """A real proxy search (3 children, 2 steps each, regularized evolution): its driver
    killed with SIGKILL after
    the first child finished (its workers must exit with it), then resumed to the end."""
    out = str(tmp_path / "search")
    db = os.path.join(out, "search.sqlite")
    # a non-default combination on the real proxy: aging evolution, 2 random children
    # and then a mutation of the better one
    cmd = [sys.executable, "-m", "search.controller", "--config", TINY_PROXY, "--out", out,
           "--quiet", "--set", "strategy=regularized_evolution", "--set",
           "regularized_evolution.population=2", "--set", "regularized_evolution.sample_size=2"]
    process = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        if os.path.exists(db) and _counts(db).get(DONE, 0) >= 1:
            break
        time.sleep(1)
    assert process.poll() is None, "the search ended before it could be killed"
    workers = _children(process.pid)
    assert workers, "the search had no worker process to orphan"
    os.kill(process.pid, signal.SIGKILL)  # the driver only, as a crash or OOM kill would
    process.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(os.path.exists(f"/proc/{p}") for p in workers):
        time.sleep(0.5)
    alive = [p for p in workers if os.path.exists(f"/proc/{p}")]
    if alive:
        os.killpg(process.pid, signal.SIGKILL)
    assert not alive, f"worker(s) {alive} outlived their driver"
    before = {t.id: t for t in TrialStore.open_existing(db).trials(DONE)}
    assert before

    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=800)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # a quiet console in the driver and its workers; each worker's output is in its log
    console = resumed.stdout + resumed.stderr
    assert not [n for n in console_noise if n in console], console[-3000:]
    logs = os.listdir(os.path.join(out, "logs"))
    assert "trial_1.log" in logs and all(n.startswith("trial_") for n in logs)
    trials = TrialStore.open_existing(db).trials()
    assert len(trials) == 3 and {t.status for t in trials} <= {DONE, FAILED}
    for t in trials:
        if t.id in before:  # finished before the kill: untouched, trained once
            assert (t.map, t.finished, t.attempts) == (before[t.id].map, before[t.id].finished,
                                                       1)
        else:
            assert t.attempts in (1, 2)  # 2 = was running at the kill and was requeued
    assert [t.extra["origin"] for t in trials] == ["random", "random", "mutate"]


def test_load_config_layers_the_default(tmp_path):
    config = load_config(_toy_config(tmp_path))
    assert config.evaluator == "toy" and config.proxy.input_size == 128
    assert config.reward.w == -0.3 and config.latency.source == "none"


# ------------------------------------------------------------ faults
def _one_line(capsys, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert "Traceback" not in err[0]


def test_empty_store_is_refused_on_resume_and_left_alone(tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "search.sqlite").write_bytes(b"")
    argv = ["--config", _toy_config(tmp_path, budget=10), "--out", str(out), "--quiet", "--resume"]
    assert controller.main(argv) == 2
    _one_line(capsys, "is empty (0 bytes) and holds no search to resume")
    assert (out / "search.sqlite").stat().st_size == 0  # never overwritten


def test_truncated_store_is_refused_by_resume_and_retrain(tmp_path, capsys):
    out = tmp_path / "s"
    config = _toy_config(tmp_path, budget=10)
    assert controller.main(["--config", config, "--out", str(out), "--quiet"]) == 0
    db = out / "search.sqlite"
    with sqlite3.connect(str(db)) as connection:  # everything into the main file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = db.read_bytes()
    db.write_bytes(data[:len(data) // 2])
    capsys.readouterr()
    assert controller.main(["--config", config, "--out", str(out), "--quiet",
                            "--resume"]) == 2
    _one_line(capsys, "truncated or damaged")
    assert retrain.main(["--search", str(out)]) == 2
    _one_line(capsys, "truncated or damaged")
    assert len(db.read_bytes()) == len(data) // 2


def test_unwritable_out_is_named_before_any_work(tmp_path, capsys):
    from search import evolution
    assert controller.main(["--config", _toy_config(tmp_path, budget=10), "--out", "/proc/mnas_out",
                            "--quiet"]) == 2
    _one_line(capsys, "cannot write to the output folder /proc/mnas_out")
    for resume in ([], ["--resume"]):  # the MSNAS entry point, new and resumed
        assert evolution.main(["--out", "/proc/mnas_out", "--quiet", *resume]) == 2
        _one_line(capsys, "/proc/mnas_out")


def test_unreachable_ray_address_fails_fast_with_one_line(tmp_path, capsys):
    pytest.importorskip("ray")
    start = time.time()
    argv = ["--config", _toy_config(tmp_path, budget=10), "--out", str(tmp_path / "r"), "--quiet",
            "--executor", "ray", "--address", "127.0.0.1:1"]
    assert controller.main(argv) == 2
    assert time.time() - start < 30
    _one_line(capsys, "no Ray cluster answers at 127.0.0.1:1")


def test_every_finished_child_feeds_exactly_one_update(tmp_path):
    """Duplicates finish at sampling time, so one wait can leave several batches ready;
    the last, smaller batch is used too."""
    out = tmp_path / "s"
    config = _toy_config(tmp_path, budget=30, update_every=4, in_flight=6,
                         space_overrides={"channels": [16], "expansions": [16],
                                          "kernels": [3], "merges": ["sum"],
                                          "intermediate_blocks": 0, "max_level": 4})
    assert controller.main(["--config", config, "--out", str(out), "--quiet"]) == 0
    store = TrialStore.open_existing(str(out / "search.sqlite"))
    done = {t.id for t in store.trials(DONE)}
    _, meta = store.get_state("controller")
    assert len(done) == 30 and sorted(meta["consumed"]) == sorted(done)
    assert meta["updates"] == 8  # 7 batches of 4, then the last 2
    copies = [t for t in store.trials(DONE) if "reused_from" in t.extra]
    assert len(copies) >= 27  # 3 detectors in this space: the rest are copies, consumed too


def test_a_store_from_before_the_framework_is_refused_with_one_line(tmp_path, capsys):
    out = tmp_path / "old"
    old = {"space": "mnasfpn", "update_every": 4, "evaluator": "toy", "space_layout": 2}
    TrialStore(str(out / "search.sqlite"), old).close()
    argv = ["--config", _toy_config(tmp_path, budget=4), "--out", str(out), "--quiet",
            "--resume"]
    assert controller.main(argv) == 2
    _one_line(capsys, "was made before the search framework")
    legacy = tmp_path / "msnas"
    legacy.mkdir()
    (legacy / "trials.sqlite").write_bytes(b"")
    assert controller.main(argv[:3] + [str(legacy), "--resume"]) == 2
    _one_line(capsys, "an MSNAS evolution store from before the search framework")


def test_python_m_search_help_lists_the_three_axes():
    r = subprocess.run([sys.executable, "-m", "search", "--help"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for word in ("mnasfpn", "msnas", "ppo", "regularized_evolution", "random", "evolution",
                 "proxy", "supernet", "toy", "mnasfpn_random", "msnas_ppo"):
        assert word in r.stdout


@pytest.mark.timeout(600)
@pytest.mark.parametrize("max_retries", [1, 0])
def test_a_worker_killed_mid_child_is_retried_up_to_the_limit(tmp_path, max_retries):
    """The worker process dies (kill -9) while it trains a child: the child is re-queued
    and finishes on a new worker, its loss recorded; with max_retries 0 it fails."""
    out = str(tmp_path / "s")
    db = os.path.join(out, "search.sqlite")
    config = _toy_config(tmp_path, budget=2, workers=1, in_flight=1, strategy="random",
                         toy={"delay_s": 4.0}, max_retries=max_retries,
                         reference_architectures=[])  # the kill is for a child
    process = subprocess.Popen([sys.executable, "-m", "search.controller", "--config", config,
                                "--out", out, "--quiet"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.exists(db) and _counts(db).get("running")):
        time.sleep(0.2)
    workers = []
    while time.time() < deadline and not workers:
        # pool workers, not multiprocessing's resource tracker (a child of the driver too)
        workers = [p for p in _children(process.pid) if "spawn_main" in _cmdline(p)]
        time.sleep(0.2)
    time.sleep(1.0)  # mid-child: the toy sleeps 4 s
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]
    trials = TrialStore.open_existing(db).trials()
    first = trials[0]
    assert len(first.extra["retries"]) == 1 and "died mid-child" in first.extra["retries"][0][
        "error"]
    if max_retries:
        assert [t.status for t in trials] == [DONE, DONE] and first.attempts == 2
        assert first.timings["worker_pid"] not in workers
    else:
        assert first.status == FAILED and "died mid-child" in first.error
        assert trials[1].status == DONE


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""
