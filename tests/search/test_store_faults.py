"""Faults a demanding user tries against the driver: empty, truncated and unwritable
stores, an unreachable Ray address, and the policy consuming every finished child once."""

import json
import os
import sqlite3
import time

import pytest

from search import controller, retrain
from search.store import DONE, TrialStore


def _toy_config(tmp_path, **extra):
    data = {"evaluator": "toy", "budget": 10, "update_every": 4, "in_flight": 3,
            "latency": {"source": "none"}, **extra}
    path = tmp_path / "toy.yaml"
    path.write_text(json.dumps(data))
    return str(path)


def _one_line(capsys, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert "Traceback" not in err[0]


def test_empty_store_is_refused_on_resume_and_left_alone(tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "search.sqlite").write_bytes(b"")
    argv = ["--config", _toy_config(tmp_path), "--out", str(out), "--quiet", "--resume"]
    assert controller.main(argv) == 2
    _one_line(capsys, "is empty (0 bytes) and holds no search to resume")
    assert (out / "search.sqlite").stat().st_size == 0  # never overwritten


def test_truncated_store_is_refused_by_resume_and_retrain(tmp_path, capsys):
    out = tmp_path / "s"
    config = _toy_config(tmp_path)
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
    assert controller.main(["--config", _toy_config(tmp_path), "--out", "/proc/mnas_out",
                            "--quiet"]) == 2
    _one_line(capsys, "cannot write to the output folder /proc/mnas_out")


def test_unreachable_ray_address_fails_fast_with_one_line(tmp_path, capsys):
    pytest.importorskip("ray")
    start = time.time()
    argv = ["--config", _toy_config(tmp_path), "--out", str(tmp_path / "r"), "--quiet",
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
