"""Algorithm 1 on a real TrialStore with a stand-in scorer: validity, Select, dedup, resume."""

import hashlib
import subprocess
import sys

import pytest

from search.evolution import Evolution
from search.msnas_config import DEFAULTS, ConfigError, load_config
from search.msnas_pipeline import resolve_constraint, space_of
from search.store import TrialStore

CFG = load_config(None, space__num_blocks=10, space__channels=8,
                  evolution__population=6, evolution__iterations=4,
                  evolution__max_attempts=40, evolution__random_children=2)


def fake_score(spec):
    """Deterministic stand-in for the one-shot score (a function of the architecture)."""
    digest = hashlib.sha256(spec.to_json().encode()).digest()
    return {"AP": digest[0] / 255, "AP50": digest[1] / 255}, {}


class Interrupted(BaseException):
    """Like a kill: not an Exception, so the scorer failure path does not record it."""


def run(path, score=fake_score, cfg=CFG):
    constraint = resolve_constraint(cfg)
    store = TrialStore(str(path), dict(cfg, constraint=dict(cfg["constraint"],
                                                             target=constraint.target)))
    store.requeue_running()
    evo = Evolution(space_of(cfg), constraint, score, store, cfg, progress=False,
                    log=lambda _: None)
    return evo.run(), store, constraint


def test_candidates_are_valid_selected_and_never_repeated(tmp_path):
    top, store, constraint = run(tmp_path / "t.sqlite")
    trials = store.trials()
    assert all(t.status == "done" for t in trials)
    hashes = [t.arch_hash for t in trials]
    assert len(hashes) == len(set(hashes))  # no architecture scored twice
    iterations = {t.extra["iteration"] for t in trials}
    assert iterations == set(range(CFG["evolution"]["iterations"] + 1))
    from mnas_tf.arch.msnas import MSNASSpec
    for t in trials:
        spec = MSNASSpec.from_dict(t.arch)  # re-validates the whole path
        assert constraint(spec)
        assert t.madds == pytest.approx(constraint.madds(spec))
    assert {t.extra["origin"] for t in trials if t.extra["iteration"] > 0} & {
        "crossover_encoder", "mutate_encoder", "crossover_features", "mutate_features"}
    # Top-k is the best of everything scored (the population is elitist)
    best = sorted((t.reward for t in trials), reverse=True)[:CFG["evolution"]["top_k"]]
    assert [p["score"] for p in top] == best


def test_resume_after_interruption_loses_and_repeats_nothing(tmp_path):
    reference, ref_store, _ = run(tmp_path / "ref.sqlite")
    calls = {"n": 0}

    def dies_after_9(spec):
        calls["n"] += 1
        if calls["n"] == 10:
            raise Interrupted()
        return fake_score(spec)

    with pytest.raises(Interrupted):
        run(tmp_path / "cut.sqlite", score=dies_after_9)
    store = TrialStore(str(tmp_path / "cut.sqlite"), ref_store_config(ref_store))
    assert store.counts()["running"] == 1 and store.counts()["done"] == 9
    store.close()
    resumed, store, _ = run(tmp_path / "cut.sqlite")
    assert [t.arch_hash for t in store.trials()] == [t.arch_hash for t in ref_store.trials()]
    assert all(t.status == "done" for t in store.trials())
    assert resumed == [dict(p) for p in reference]


def ref_store_config(store):
    import json
    return json.loads(store._db.execute("SELECT value FROM meta").fetchone()[0])


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"unknown config key 'evolution.popsize'; valid "
                                          r"keys here: .*population"):
        load_config(None, evolution__popsize=3)
    with pytest.raises(ConfigError, match="data.input_size"):
        load_config(None, data__input_size=100)
    with pytest.raises(ConfigError, match="no latency LUT exists for the MSNAS space"):
        load_config(None, constraint__type="latency")
    assert load_config(None)["evolution"]["population"] == DEFAULTS["evolution"]["population"]


def test_cli_config_error_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("evolution: {populaton: 3}\n")
    r = subprocess.run([sys.executable, "-m", "search.evolution", "--config", str(bad),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "unknown config key 'evolution.populaton'" in r.stderr
    assert "Traceback" not in r.stderr


def test_shipped_search_configs_load_and_default_yaml_is_the_embedded_default():
    from pathlib import Path
    root = Path(__file__).resolve().parents[2] / "configs" / "search"
    assert load_config(str(root / "msnas_default.yaml")) == load_config(None)
    for name in ("msnas_r18", "msnas_r34", "msnas_r50"):
        cfg = load_config(str(root / f"{name}.yaml"))
        assert cfg["evolution"]["population"] == 50 and cfg["constraint"]["tolerance"] == 0.01


def test_cli_unknown_experiment_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: no_such_experiment\n")
    r = subprocess.run([sys.executable, "-m", "search.evolution", "--config", str(bad),
                        "--out", str(tmp_path / "o"), "--quiet"], capture_output=True,
                       text=True)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "unknown experiment 'no_such_experiment'" in r.stderr
    assert "Traceback" not in r.stderr
