"""`python -m search.evolution` (evolution over the MSNAS super-net) survives kill -9 of its
driver: the super-net is trained once, the resume loses and repeats nothing."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

TINY = """
space: msnas
space_overrides: {num_blocks: 5, channels: 8}
strategy: evolution
evaluator: supernet
budget: null
workers: 1
in_flight: 1
top_k: 2
latency: {source: none}
constraint: {type: madds, tolerance: 0.2}
supernet: {input_size: 128, batch_size: 2, eval_batch_size: 8, max_eval_batches: 1,
           steps: 4, checkpoint_every: 2, finetune_steps: 1, finetune_batches: 1}
evolution: {population: 3, iterations: 3, max_attempts: 30, random_children: 1}
"""


def _done(db):
    if not os.path.exists(db):
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            return c.execute("SELECT id, arch_hash, reward FROM trials WHERE status='done' "
                             "ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []


def _cli(*args):
    return [sys.executable, "-m", "search.evolution", *args, "--quiet"]


def test_kill_9_mid_evolution_then_resume(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    out = tmp_path / "out"
    db = str(out / "search.sqlite")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(_cli("--config", str(cfg), "--out", str(out)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while len(_done(db)) < 5 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, f"finished before the kill: {proc.stderr.read()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _done(db)
    assert len(before) >= 5

    again = subprocess.run(_cli("--config", str(cfg), "--out", str(out)), env=env,
                           capture_output=True, text=True)
    assert again.returncode == 2 and "pass --resume" in again.stderr

    resumed = subprocess.run(_cli("--config", str(cfg), "--out", str(out), "--resume"),
                             env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT id, arch_hash, reward, status, attempts, extra FROM trials "
                         "ORDER BY id").fetchall()
    assert all(r[3] == "done" for r in rows)
    assert len({r[1] for r in rows}) == len(rows)  # nothing scored twice
    assert set(before) <= {r[:3] for r in rows}    # nothing scored before the kill lost
    assert max(r[4] for r in rows) <= 2            # at most the in-flight one re-ran
    assert max(json.loads(r[5])["iteration"] for r in rows) == 3
    top = json.loads((out / "top_k.json").read_text())
    assert len(top) == 2 and top[0]["score"] == max(r[2] for r in rows)
    assert (out / "progress.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prepared"]["steps"] == 4 and summary["strategy"] == "evolution"
