"""Every shipped search config runs end to end through the one driver with the toy
evaluator (and no latency table): the configs stay valid and their combinations work."""

import json

import pytest

from search import controller, evolution
from search.store import TrialStore

CASES = [
    ("default", controller, []),
    ("mnasfpn_random", controller, []),
    ("mnasfpn_evolution", controller, []),
    ("msnas_ppo", controller, []),
    ("msnas_default", evolution, ["--set", "evolution.iterations=1"]),
]


@pytest.mark.parametrize("name, cli, extra", CASES, ids=[c[0] for c in CASES])
def test_shipped_config_runs_on_the_toy_evaluator(tmp_path, name, cli, extra):
    out = tmp_path / name
    argv = ["--config", name, "--set", "evaluator=toy", "--set", "latency.source=none",
            "--out", str(out), "--quiet", *extra]
    if name != "msnas_default":
        argv += ["--budget", "10"]
    assert cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    counts = summary["counts"]
    assert counts["done"] >= 8 and counts["running"] == counts["pending"] == 0
    assert summary["evaluator"] == "toy"
    store = TrialStore.open_existing(str(out / "search.sqlite"))
    for t in store.trials():  # scored, or outside the Select window and ranked below
        assert t.map is not None or (t.extra["rejected"] and t.reward < 0)
    if name == "msnas_ppo":  # an untrained policy rarely lands in the 5% window
        return
    top = json.loads((out / "top_k.json").read_text())
    assert summary["top_k"] and (out / top[0]["file"]).exists()
