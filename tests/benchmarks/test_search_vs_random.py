"""benchmarks/search_vs_random.py end to end on the toy evaluator (2 seeds, budget 6),
with a made-up latency table: its figures agree with the searches' stores, it reuses and
resumes searches, and refuses what it cannot compare with one line."""

import importlib.util
import json
import os
import sqlite3
from pathlib import Path

import pytest

from search.frontier import hypervolume
from search.store import DONE, TrialStore

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "search_vs_random.py"
ARGS = ["--set", "evaluator=toy", "--set", "reward.target_ms=25", "--budget", "6", "--seeds", "0", "1", "--quiet", "--json"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("search_vs_random", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _latency(arch) -> float:
    return 5.0 + arch["channels"] / 8 + len(arch["blocks"])  # 12..26 ms: around the target


@pytest.fixture
def fake_table(monkeypatch):
    """The search's latency table, priced from the architecture (no measurement)."""
    from search import objectives
    monkeypatch.setattr(objectives, "latency_predictor",
                        lambda config, cell_space, progress, extra_specs=(): _latency)


def _last_json(capsys):
    captured = capsys.readouterr()
    return json.loads(captured.out.strip().splitlines()[-1]), captured


def test_both_strategies_are_measured_from_their_stores_and_reused(
        bench, fake_table, tmp_path, capsys):
    out = tmp_path / "svr"
    assert bench.main(ARGS + ["--out", str(out)]) == 0
    result, captured = _last_json(capsys)
    assert "| best reward |" in captured.out and "ran (" in captured.err
    saved = json.loads((out / "search_vs_random.json").read_text())
    assert saved["summary"] == result["summary"] and (out / "search_vs_random.png").exists()
    assert result["hv_reference"] == [50.0, 0.0]  # 2 x the 25 ms target
    for run in saved["runs"]:
        store = TrialStore.open_existing(str(out / f"{run['strategy']}_seed{run['seed']}"
                                             / "search.sqlite"))
        children = store.trials(DONE)
        [ref] = store.references()
        assert len(children) == 6 and run["children"] == 6
        assert run["best_reward"] == max(t.reward for t in children)
        assert run["best_map_at_target"] == max(t.map for t in children if t.latency_ms <= 25)
        assert run["hypervolume"] == pytest.approx(hypervolume(
            [(t.latency_ms, t.map) for t in children], (50.0, 0.0))) and run["hypervolume"] > 0
        published = run["references"][0]
        assert (published["name"], published["map"], published["latency_ms"]) == (
            "mnasfpn", ref.map, ref.latency_ms)
        assert published["beaten"] == any(t.latency_ms <= ref.latency_ms and t.map > ref.map
                                          for t in children)
    for strategy in ("ppo", "random"):
        stats = result["summary"][strategy]
        assert all(stats[m]["n"] == 2 for m in ("best_reward", "best_map_at_target",
                                                  "hypervolume"))
        assert stats["beats_published"]["of"] == 2
    # the same seed scores the published cell the same in both strategies' searches
    by_seed = {}
    for row in result["published"]:
        by_seed.setdefault(row["seed"], set()).add((row["map"], row["latency_ms"]))
    assert all(len(v) == 1 for v in by_seed.values())

    # --resume: finished searches are reused; one stopped mid-search is resumed
    stopped = out / "random_seed1"
    os.remove(stopped / "summary.json")
    with sqlite3.connect(str(stopped / "search.sqlite")) as db:
        db.execute("UPDATE trials SET status='running' WHERE id=(SELECT MAX(id) FROM trials)")
    assert bench.main(ARGS + ["--out", str(out), "--resume"]) == 0
    again, captured = _last_json(capsys)
    assert captured.err.count("reused (") == 3 and "random seed 1: resumed (" in captured.err
    assert again["summary"] == result["summary"]


@pytest.mark.parametrize("extra, needle", [
    (["--set", "strategy=random"], "the config's strategy is already random"),
    (["--set", "budgett=3"], "unknown key(s) budgett"),
])
def test_what_cannot_be_compared_is_refused_with_one_line(bench, tmp_path, capsys, extra,
                                                          needle):
    assert bench.main(ARGS + ["--out", str(tmp_path / "svr"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]


def test_an_existing_search_is_refused_without_resume(bench, fake_table, tmp_path, capsys):
    out = tmp_path / "svr"
    args = ["--set", "evaluator=toy", "--budget", "2", "--seeds", "0", "--quiet", "--out",
            str(out)]
    assert bench.main(args) == 0
    capsys.readouterr()
    assert bench.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists; pass --resume" in err[0]
