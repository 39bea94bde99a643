"""python -m search.proxycheck end to end on the toy evaluator (a known answer: its
reference is the noise-free objective), including resume after kill -9."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from search import proxycheck

TOY = ["--set", "evaluator=toy", "--set", "latency.source=none", "--quiet"]


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "search.proxycheck", *args],
                          capture_output=True, text=True, timeout=timeout)


def _last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def test_noise_free_proxy_ranks_perfectly(tmp_path):
    out = str(tmp_path / "check")
    r = _cli(*TOY, "--archs", "5", "--seeds", "2", "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    report = _last_json(r.stdout)
    assert report["n_archs"] == 6  # 5 samples and the published cell
    assert report["kendall_tau"] == pytest.approx(1.0)
    assert report["kendall_tau_ci"] == pytest.approx([1.0, 1.0])
    assert report["spearman"] == pytest.approx(1.0)
    assert report["seed_std"] == 0.0 and report["between_arch_std"] > 0
    assert report["published"]["of"] == 6
    assert report["goals"] == {"kendall_tau": True, "archs": False, "seed_noise": True}
    assert {"kendall_tau", "kendall_tau_ci", "spearman", "seed_std", "between_arch_std",
            "n_archs"} <= set(report)
    assert "Kendall tau 1" in r.stdout and "published cell: proxy rank" in r.stdout
    for name in ("proxycheck.sqlite", "proxycheck.json", "proxycheck.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0


def test_seed_noise_is_measured_and_drowns_the_ranking(tmp_path):
    """Noise of std 0.05 against a between-arch spread of a few hundredths."""
    r = _cli(*TOY, "--set", "toy.noise=0.05", "--archs", "8", "--seeds", "3",
             "--out", str(tmp_path / "noisy"), "--json")
    assert r.returncode == 0, r.stderr
    report = _last_json(r.stdout)
    assert report["seed_std"] == pytest.approx(0.05, rel=0.4)
    assert report["kendall_tau"] < 0.95
    assert report["goals"]["seed_noise"] is False
    assert report["single_seed_kendall_tau"] <= report["kendall_tau"] + 0.2


def _done_rows(db_path):
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            return {row[0]: (row[1], row[2]) for row in db.execute(
                "SELECT id, finished, map FROM trials WHERE status='done'")}
        finally:
            db.close()
    except sqlite3.Error:
        return {}


def test_resume_after_kill9_loses_and_repeats_nothing(tmp_path):
    out = str(tmp_path / "killed")
    args = [*TOY, "--set", "toy.noise=0.02", "--set", "toy.delay_s=0.4", "--archs", "3",
            "--seeds", "2", "--workers", "1", "--out", out]
    proc = subprocess.Popen([sys.executable, "-m", "search.proxycheck", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    db = os.path.join(out, proxycheck.DB_NAME)
    deadline = time.time() + 90
    while time.time() < deadline and len(_done_rows(db)) < 3 and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _done_rows(db)
    assert 3 <= len(before) < 12, "the kill must land mid-check"

    again = _cli(*args, "--resume", "--json")
    assert again.returncode == 0, again.stderr
    after = _done_rows(db)
    assert len(after) == 12  # (3 samples + published) x (2 seeds + 1 reference)
    assert all(after[i] == before[i] for i in before)  # finished runs were not run again
    fresh = _cli(*TOY, "--set", "toy.noise=0.02", "--archs", "3", "--seeds", "2",
                 "--out", str(tmp_path / "whole"), "--json")
    resumed, whole = _last_json(again.stdout), _last_json(fresh.stdout)
    assert resumed["archs"] == whole["archs"]  # same children, seeds, scores
    assert resumed["kendall_tau"] == whole["kendall_tau"]


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    r = _cli(*TOY, "--archs", "1", "--out", str(tmp_path / "a"))
    assert r.returncode == 2 and "--archs must be >= 2" in r.stderr
    assert "Traceback" not in r.stderr and not os.path.exists(tmp_path / "a" / "proxycheck.sqlite")
    r = _cli(*TOY, "--out", str(tmp_path / "none"), "--resume")
    assert r.returncode == 2 and "nothing to resume" in r.stderr
    out = str(tmp_path / "b")
    assert _cli(*TOY, "--archs", "2", "--seeds", "1", "--out", out).returncode == 0
    r = _cli(*TOY, "--archs", "3", "--seeds", "1", "--out", out, "--resume")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _cli(*TOY, "--archs", "2", "--out", out)
    assert r.returncode == 2 and "already exists" in r.stderr


def test_reference_schedule_is_the_proxy_trained_longer():
    from search.config import load_config
    proxy, reference = proxycheck.check_configs(load_config(), 700,
                                                ["proxy.freeze_backbone=false"])
    assert reference.proxy.train_steps == 700 and proxy.proxy.train_steps == 600
    assert reference.proxy.freeze_backbone is False and proxy.proxy.freeze_backbone is True
    assert proxy.latency.source == reference.latency.source == "none"
    assert reference.proxy.data_seed == proxy.proxy.data_seed  # the same data
    _, default = proxycheck.check_configs(load_config(), None)
    assert default.proxy.train_steps == 1800
