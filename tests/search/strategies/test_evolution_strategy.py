"""Algorithm 1 (`strategy: evolution`) through the one driver, on the toy evaluator:
validity, Select, de-duplication, elitism, resume; and its config's one-line errors."""

import subprocess
import sys

import pytest

from mnas_tf.arch.msnas import MSNASSpec
from search.config import SearchConfigError, load_config
from search.driver import Search
from search.evaluators.toy import ToyEvaluator
from search.store import TrialStore

SETS = ["space=msnas", "space_overrides.num_blocks=10", "space_overrides.channels=8",
        "strategy=evolution", "evaluator=toy", "budget=null", "latency.source=none",
        "constraint.type=madds", "evolution.population=6", "evolution.iterations=4",
        "evolution.max_attempts=40", "evolution.random_children=2", "top_k=5",
        "workers=1", "in_flight=1"]
CONFIG = load_config(sets=SETS)
PAPER_OPERATORS = {"crossover_encoder", "mutate_encoder", "crossover_features",
                   "mutate_features"}


def run(out, resume=False):
    search = Search(CONFIG, str(out), resume=resume, progress=False)
    return search, search.run()


def test_candidates_are_valid_selected_and_never_repeated(tmp_path):
    search, summary = run(tmp_path / "a")
    trials = search.store.trials()
    assert trials and all(t.status == "done" for t in trials)
    hashes = [t.arch_hash for t in trials]
    assert len(hashes) == len(set(hashes))  # no architecture scored twice
    assert {t.extra["iteration"] for t in trials} == set(range(5))
    for t in trials:
        spec = MSNASSpec.from_dict(t.arch)  # re-validates the whole path
        assert search.constraint(spec)
        assert t.madds == pytest.approx(search.constraint.madds(spec))
    assert {t.extra["origin"] for t in trials if t.extra["iteration"] > 0} & PAPER_OPERATORS
    # Top-k is the best of everything scored (the population is elitist)
    best = sorted((t.reward for t in trials), reverse=True)[:5]
    top = TrialStore.open_existing(str(tmp_path / "a" / "search.sqlite")).get_state("evolution")
    assert summary["best"]["reward"] == best[0]
    assert sorted([t.reward for t in trials if t.id in summary["top_k"]], reverse=True) == best
    assert top is not None and (tmp_path / "a" / "progress.png").stat().st_size > 0
    # children per iteration, as Algorithm 1 makes them: P by variation within M attempts,
    # then R random children that pass Select
    made = summary["children_per_iteration"]
    assert [m["iteration"] for m in made] == list(range(5)) == [m["iteration"] for m in
                                                                 top[1]["children"]]
    assert made[0] == {"iteration": 0, "random": 6, "variation": 0, "attempts": 0}
    for m in made[1:]:
        of_t = [t for t in trials if t.extra["iteration"] == m["iteration"]]
        assert m["random"] == 2 and m["variation"] + m["random"] == len(of_t)
        assert 0 < m["attempts"] <= 40 and m["variation"] <= 6
        assert m["variation"] == 6 or m["attempts"] == 40  # P passed, or M were spent


class Interrupted(BaseException):
    """Like a kill: not an Exception, so the evaluator's failure path does not record it."""


def test_resume_after_interruption_loses_and_repeats_nothing(tmp_path, monkeypatch):
    reference, _ = run(tmp_path / "ref")
    calls = {"n": 0}
    score = ToyEvaluator.score

    def dies_on_the_10th(self, spec, seed):
        calls["n"] += 1
        if calls["n"] == 10:
            raise Interrupted()
        return score(self, spec, seed)

    monkeypatch.setattr(ToyEvaluator, "score", dies_on_the_10th)
    with pytest.raises(Interrupted):
        run(tmp_path / "cut")
    store = TrialStore.open_existing(str(tmp_path / "cut" / "search.sqlite"))
    assert store.counts()["running"] == 1 and store.counts()["done"] == 9
    store.close()
    monkeypatch.setattr(ToyEvaluator, "score", score)
    resumed, _ = run(tmp_path / "cut", resume=True)
    ref = [(t.arch_hash, t.reward) for t in reference.store.trials()]
    assert [(t.arch_hash, t.reward) for t in resumed.store.trials()] == ref
    assert max(t.attempts for t in resumed.store.trials()) == 2  # the one in flight


@pytest.mark.parametrize("sets, needle", [
    (["evolution.popsize=3"], "evolution: unknown key(s) popsize; valid keys are population"),
    (["evolution.population=2.5"], "evolution.population must be an integer"),
    (["evolution.mutation_prob=high"], "evolution.mutation_prob must be a number"),
    (["supernet.input_size=100"], "supernet.input_size must be a multiple of 64"),
    (["budget=null", "strategy=random"], "budget: null (until the strategy ends) needs "
                                         "strategy evolution"),
    (["space=msnas", "evaluator=proxy"], "evaluator proxy trains MnasFPN-family heads"),
    (["space=msnas", "evaluator=toy", "latency.source=lut"], "no latency table exists for "
                                                              "space msnas"),
    (["constraint.type=madds"], "constraint.type madds needs analytic MAdds"),
    (["strategy=annealing"], "strategy 'annealing' is unknown; valid: ppo, evolution"),
    (["ppo.update_every"], "--set 'ppo.update_every' is not KEY=VALUE"),
])
def test_config_errors_name_the_key(sets, needle):
    with pytest.raises(SearchConfigError) as e:
        load_config(sets=sets)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_every_shipped_search_config_loads():
    from search.config import SEARCH_CONFIG_DIR
    names = sorted(p.stem for p in SEARCH_CONFIG_DIR.glob("*.yaml"))
    assert {"default", "msnas_default", "mnasfpn_random", "mnasfpn_evolution",
            "msnas_ppo"} <= set(names)
    for name in names:
        load_config(name)
    for name in ("msnas_r18", "msnas_r34", "msnas_r50"):
        cfg = load_config(name)
        assert cfg.evolution.population == 50 and cfg.constraint.tolerance == 0.01
    msnas = load_config("msnas_default")
    assert (msnas.space, msnas.strategy, msnas.evaluator) == ("msnas", "evolution", "supernet")


def test_cli_config_errors_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("evolution: {populaton: 3}\n")
    for args in (["--config", str(bad)], ["--set", "supernet.experiment=no_such_experiment"]):
        r = subprocess.run([sys.executable, "-m", "search.evolution", *args, "--out",
                            str(tmp_path / "o"), "--quiet"], capture_output=True, text=True)
        assert r.returncode == 2, r.stderr[-2000:]
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert ("unknown key(s) populaton" in r.stderr
                or "unknown experiment 'no_such_experiment'" in r.stderr)
    assert not (tmp_path / "o" / "search.sqlite").exists()
