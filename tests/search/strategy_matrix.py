"""Shared by the strategy x space matrix tests: a toy search stopped mid-run (killed with
SIGKILL, or interrupted in-process the way a kill leaves the store: a child running),
then resumed, must lose and repeat nothing (and, where the strategy's proposals do not
depend on timing, end exactly like an uninterrupted run). The mnasfpn space's searches
also score the published cell as a reference trial: once, outside the budget, and never
again after the resume."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

SPACE_SETTINGS = {
    "mnasfpn": {"space": "mnasfpn"},
    "msnas": {"space": "msnas", "space_overrides": {"num_blocks": 6, "channels": 8},
              "constraint": {"type": "madds", "tolerance": 0.1}},
}
# strategies whose proposals depend only on the seed and the results, never on timing
TIMING_FREE = ("evolution", "random")


def config_text(space: str, strategy: str, delay_s: float = 0.15) -> str:
    data = {**SPACE_SETTINGS[space], "strategy": strategy, "evaluator": "toy",
            "budget": 14, "workers": 1, "in_flight": 2, "latency": {"source": "none"},
            "toy": {"delay_s": delay_s}, "ppo": {"update_every": 4},
            "regularized_evolution": {"population": 6, "sample_size": 3}}
    if space == "msnas" and strategy == "ppo":  # an untrained policy rarely lands in 10%
        data["constraint"] = {"type": "madds", "tolerance": 0.6}
    if strategy == "evolution":
        data.update(budget=None, evolution={"population": 4, "iterations": 2,
                                            "max_attempts": 30, "random_children": 1})
    return json.dumps(data)


def _rows(db, role="child"):
    if not os.path.exists(db):
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            return c.execute("SELECT id, arch_hash, reward, status, attempts, extra, finished "
                             "FROM trials WHERE role=? ORDER BY id", (role,)).fetchall()
    except sqlite3.OperationalError:
        return []


def _references(space: str) -> int:
    """How many reference trials the space's toy search scores (the default: the
    published cell for the MnasFPN family, none for msnas)."""
    return 1 if space == "mnasfpn" else 0


def _check_references(db, space: str, reference) -> None:
    """Each reference: one row, scored, run at most twice (in flight at the stop), and
    the same score as in the uninterrupted run."""
    rows = _rows(db, "reference")
    assert len(rows) == _references(space)
    assert all(r[3] == "done" and r[2] is not None and r[4] <= 2 for r in rows)
    assert [json.loads(r[5])["reference"] for r in rows] == ["mnasfpn"] * len(rows)
    if reference is not None:
        assert [(r[1], r[2]) for r in rows] == [(r[1], r[2]) for r in
                                                _rows(reference, "reference")]


def _cli(config, out, *extra):
    return [sys.executable, "-m", "search.controller", "--config", config, "--out", out,
            "--quiet", *extra]


def check_kill_and_resume(tmp_path, space: str, strategy: str) -> None:
    config = tmp_path / "toy.yaml"
    config.write_text(config_text(space, strategy))
    out, ref = str(tmp_path / "killed"), str(tmp_path / "reference")
    db = os.path.join(out, "search.sqlite")
    proc = subprocess.Popen(_cli(str(config), out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if sum(r[3] == "done" for r in _rows(db)) >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"ended before the kill: {proc.stderr.read()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL) if _group_alive(proc.pid) else None
    before = {r[0]: r for r in _rows(db) if r[3] == "done"}
    assert len(before) >= 4

    resumed = subprocess.run(_cli(str(config), out, "--resume"), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference = None
    if strategy in TIMING_FREE:
        reference = subprocess.run(_cli(str(config), ref), capture_output=True, text=True,
                                   timeout=300)
        assert reference.returncode == 0, reference.stderr[-3000:]
        reference = os.path.join(ref, "search.sqlite")
    _check_resumed(_rows(db), before, strategy, reference)
    _check_references(db, space, reference)


def _check_resumed(rows, before: dict, strategy: str, reference) -> None:
    """The store after the resume: complete, nothing finished changed, nothing repeated."""
    assert all(r[3] == "done" for r in rows)
    if strategy != "evolution":
        assert len(rows) == 14
    else:
        assert max(json.loads(r[5])["iteration"] for r in rows) == 2
    for r in rows:
        if r[0] in before:  # finished before the kill: untouched
            assert r == before[r[0]]
        assert r[4] <= 2  # 2: it was in flight at the kill and ran again
    evaluated = [r[1] for r in rows if not {"reused_from", "rejected"} & set(json.loads(r[5]))]
    assert len(evaluated) == len(set(evaluated))  # no architecture evaluated twice
    if reference is not None:
        expected = [(r[1], r[2]) for r in _rows(reference)]
        assert [(r[1], r[2]) for r in rows] == expected


class Interrupted(BaseException):
    """Like a kill: not an Exception, so the evaluator's failure path does not record it."""


def check_interrupt_and_resume(tmp_path, monkeypatch, space: str, strategy: str) -> None:
    """In-process (the toy runs inline): the 3rd evaluation never returns, then `--resume`
    finishes the search. (PPO's children outside MSNAS's Select window are not evaluated.)"""
    from search import controller
    from search.evaluators.toy import ToyEvaluator
    config = tmp_path / "toy.yaml"
    config.write_text(config_text(space, strategy, delay_s=0.0))
    out, ref = str(tmp_path / "cut"), str(tmp_path / "reference")
    argv = ["--config", str(config), "--quiet"]
    score, calls = ToyEvaluator.score, {"n": 0}

    def dies_on_the_3rd(self, spec, seed):  # child (the references are evaluated first)
        calls["n"] += 1
        if calls["n"] == 3 + _references(space):
            raise Interrupted()
        return score(self, spec, seed)

    monkeypatch.setattr(ToyEvaluator, "score", dies_on_the_3rd)
    try:
        controller.main(argv + ["--out", out])
        raise AssertionError("the search was not interrupted")
    except Interrupted:
        pass
    monkeypatch.setattr(ToyEvaluator, "score", score)
    db = os.path.join(out, "search.sqlite")
    before = {r[0]: r for r in _rows(db) if r[3] == "done"}
    assert len(before) >= 2 and sum(r[3] == "running" for r in _rows(db)) >= 1
    assert controller.main(argv + ["--out", out, "--resume"]) == 0
    reference = None
    if strategy in TIMING_FREE:
        assert controller.main(argv + ["--out", ref]) == 0
        reference = os.path.join(ref, "search.sqlite")
    _check_resumed(_rows(db), before, strategy, reference)
    _check_references(db, space, reference)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except OSError:
        return False
