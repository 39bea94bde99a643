"""Reference architectures (the published cell by default) on the toy evaluator: scored
once per search beside the children, never in the budget, the strategy or top-k, never
repeated by a resume, ranked in summary.json, marked on the frontier; and refused with
one line when they cannot be scored."""

import json
import os

import pytest

from mnas_tf.arch import load_architecture
from mnas_tf.spaces import canonical_dict
from search import controller, frontier
from search.config import load_config
from search.evaluators.toy import ToyEvaluator
from search.references import reference_names
from search.store import DONE, FAILED, REFERENCE, TrialStore

PUBLISHED = json.loads(json.dumps(canonical_dict(load_architecture("mnasfpn"))))


def _config(tmp_path, **extra):
    data = {"evaluator": "toy", "budget": 8, "in_flight": 2, "latency": {"source": "none"},
            "ppo": {"update_every": 2}, **extra}
    path = tmp_path / "toy.yaml"
    path.write_text(json.dumps(data))
    return str(path)


def _latency(spec) -> float:
    return 10.0 + spec.channels / 8 + len(spec.blocks)


@pytest.fixture
def priced(monkeypatch):
    """Toy children with a made-up latency (from their width and blocks), so the search
    has a latency/score frontier without a latency table."""
    score = ToyEvaluator.score

    def with_latency(self, spec, seed):
        result = score(self, spec, seed)
        result["latency_ms"] = _latency(spec)
        return result
    monkeypatch.setattr(ToyEvaluator, "score", with_latency)


def test_the_published_cell_is_scored_once_outside_budget_strategy_and_top_k(
        tmp_path, priced, monkeypatch, capsys):
    marked = []
    draw = frontier.mark_references
    monkeypatch.setattr(frontier, "mark_references", lambda ax, refs, key="latency_ms": (
        marked.extend(label for label, _ in refs), draw(ax, refs, key)))
    out = tmp_path / "s"
    assert controller.main(["--config", _config(tmp_path), "--out", str(out), "--quiet"]) == 0
    store = TrialStore.open_existing(str(out / "search.sqlite"))
    [ref] = store.references()
    children = store.trials()
    assert (ref.role, ref.extra, ref.seed, ref.status, ref.attempts) == (
        REFERENCE, {"reference": "mnasfpn"}, 0, DONE, 1)
    assert ref.arch == PUBLISHED and ref.latency_ms == _latency(load_architecture("mnasfpn"))
    assert len(children) == 8 and ref.id not in {t.id for t in children}  # the full budget
    assert ref.id not in store.get_state("controller")[1]["consumed"]  # PPO never saw it
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"][DONE] == 8 and ref.id not in summary["top_k"]
    assert ref.id not in [r["trial"] for r in json.loads((out / "frontier.json").read_text())]
    [row] = summary["references"]
    best = {}
    for t in children:
        best[t.arch_hash] = max(best.get(t.arch_hash, t.reward), t.reward)
    assert row == {"name": "mnasfpn", "label": "mnasfpn (published)", "trial": ref.id,
                   "status": DONE, "map": ref.map, "latency_ms": ref.latency_ms,
                   "madds": None, "reward": ref.reward, "error": None,
                   "rank": 1 + sum(r > ref.reward for r in best.values()),
                   "of": len(best) + 1}
    assert marked == ["mnasfpn (published)"] and (out / "frontier.png").exists()
    printed = capsys.readouterr().out
    assert f"reference mnasfpn (published): toy score {ref.map:.4g}" in printed
    assert f"rank {row['rank']} of {row['of']}" in printed


class Interrupted(BaseException):
    """Like a kill (see strategy_matrix.py): not an Exception, so nothing records it."""


def test_a_reference_in_flight_at_a_stop_runs_again_once_and_never_after(
        tmp_path, monkeypatch):
    config, out = _config(tmp_path, budget=4), str(tmp_path / "s")
    argv = ["--config", config, "--out", out, "--quiet"]
    score = ToyEvaluator.score

    def stops(self, spec, seed):  # the first evaluation is the reference's
        raise Interrupted()

    monkeypatch.setattr(ToyEvaluator, "score", stops)
    with pytest.raises(Interrupted):
        controller.main(argv)
    monkeypatch.setattr(ToyEvaluator, "score", score)
    db = os.path.join(out, "search.sqlite")
    [ref] = TrialStore.open_existing(db).references()
    assert ref.status == "running"
    assert controller.main(argv + ["--resume"]) == 0
    [ref] = TrialStore.open_existing(db).references()
    assert (ref.status, ref.attempts) == (DONE, 2)
    # a longer budget and one more reference on resume: more children, the new reference
    # once, the first not again
    assert controller.main(argv + ["--resume", "--budget", "6", "--set",
                                   "reference_architectures=[mnasfpn, mnasfpn_dm0.7]"]) == 0
    store = TrialStore.open_existing(db)
    first, added = store.references()
    assert (first.id, first.attempts, first.finished) == (ref.id, 2, ref.finished)
    assert (added.extra, added.status, added.attempts) == (
        {"reference": "mnasfpn_dm0.7"}, DONE, 1)
    assert len(store.trials()) == 6 and all(t.status == DONE for t in store.trials())


def test_a_failing_reference_is_recorded_with_a_warning_and_the_search_goes_on(
        tmp_path, monkeypatch, capsys):
    score = ToyEvaluator.score

    def published_fails(self, spec, seed):
        if json.loads(json.dumps(canonical_dict(spec))) == PUBLISHED:
            return {"status": "failed", "error": "boom", "metrics": {}, "timings": {}}
        return score(self, spec, seed)

    monkeypatch.setattr(ToyEvaluator, "score", published_fails)
    out = tmp_path / "s"
    assert controller.main(["--config", _config(tmp_path, budget=3), "--out", str(out),
                            "--quiet"]) == 0
    assert "[search] warning: reference mnasfpn (trial 1) failed (boom); the search goes on" \
        in capsys.readouterr().err
    [row] = json.loads((out / "summary.json").read_text())["references"]
    assert (row["status"], row["rank"], row["error"]) == (FAILED, None, "boom")
    assert len(TrialStore.open_existing(str(out / "search.sqlite")).trials(DONE)) == 3


def test_outside_its_space_the_published_cell_is_scored_all_the_same(tmp_path):
    """no_expand cannot express the published cell (it expands): still a reference, and
    the toy objective gives it its floor."""
    out = tmp_path / "s"
    assert controller.main(["--config", _config(tmp_path, budget=2, space="no_expand"),
                            "--out", str(out), "--quiet"]) == 0
    [ref] = TrialStore.open_existing(str(out / "search.sqlite")).references()
    assert (ref.status, ref.map, ref.arch) == (DONE, 0.0, PUBLISHED)


@pytest.mark.parametrize("overrides, names", [
    ({}, ("mnasfpn",)),  # the shipped default: proxy over mnasfpn
    ({"space": "no_expand", "evaluator": "toy"}, ("mnasfpn",)),
    ({"space": "msnas", "evaluator": "supernet", "latency": {"source": "none"}}, ()),
    ({"reference_architectures": []}, ()),
    ({"reference_architectures": ["mnasfpn_dm0.7", "mnasfpn"]}, ("mnasfpn_dm0.7", "mnasfpn")),
])
def test_default_references_follow_the_space_and_evaluator(overrides, names):
    assert reference_names(load_config(overrides=overrides)) == names


def test_a_reference_file_is_taken_by_path(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(load_architecture("mnasfpn_dm0.7").to_json())
    out = tmp_path / "s"
    assert controller.main(["--config", _config(tmp_path, budget=2,
                                                reference_architectures=[str(path)]),
                            "--out", str(out), "--quiet"]) == 0
    [row] = json.loads((out / "summary.json").read_text())["references"]
    assert (row["name"], row["label"], row["status"]) == (str(path), "mine", DONE)


@pytest.mark.parametrize("yaml_text, needle", [
    ("reference_architectures: [nosuch]", "reference_architectures: 'nosuch' does not load "
     "(unknown architecture 'nosuch'); valid: conn_search, mnasfpn, mnasfpn_dm0.7"),
    ("reference_architectures: mnasfpn", "reference_architectures must be a list of "
                                         "strings (or null), got 'mnasfpn' (a string)"),
    ("reference_architectures: [mnasfpn, mnasfpn]", "names 'mnasfpn' twice"),
    ("reference_architectures: ['']", "reference_architectures[0] must be an architecture "
                                      "name"),
    ("{space: msnas, evaluator: toy, latency: {source: none}, reference_architectures: "
     "[mnasfpn]}", "reference_architectures: 'mnasfpn' does not fit space msnas"),
])
def test_a_reference_that_cannot_be_scored_is_refused_with_one_line(
        tmp_path, capsys, yaml_text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    assert controller.main(["--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()
