"""The MSNAS ablations of paper §4.3 run end to end as config switches on a tiny budget:
FPN-style utilization (Table 2), no random children (Table 5) and no fine-tuning (Table 4)
in one search, its rank-check over ten stand-alone architectures with a bootstrap CI, and
no range constraints (Table 3) in another."""

import json
import math
import os
import sqlite3
import subprocess
import sys

import pytest

from mnas_tf.arch.msnas import FEATURE_STRIDES, range_constraint_error

BASE = """
space: msnas
strategy: evolution
evaluator: supernet
budget: null
workers: 1
in_flight: 1
top_k: 2
latency: {{source: none}}
constraint: {{type: madds, tolerance: 0.5}}
supernet: {{input_size: 128, batch_size: 2, eval_batch_size: 8, max_eval_batches: 1,
           steps: 4, checkpoint_every: 2, finetune_steps: {finetune}, finetune_batches: 1,
           rank_check_architectures: 10, rank_check_train_steps: 2}}
evolution: {{population: 3, iterations: 2, max_attempts: 30, random_children: {random}}}
space_overrides: {overrides}
"""


def _run(tmp_path, name, *args, **fields):
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(BASE.format(**fields))
    out = tmp_path / name
    r = subprocess.run([sys.executable, "-m", "search.evolution", *args, "--config", str(cfg),
                        "--out", str(out), "--quiet"], capture_output=True, text=True,
                       timeout=900, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r.stdout


def _trials(out):
    with sqlite3.connect(out / "search.sqlite") as c:
        rows = c.execute("SELECT arch, status, reward, timings, extra FROM trials "
                         "WHERE role = 'child' ORDER BY id").fetchall()
    return [(json.loads(a), s, r, json.loads(t or "{}"), json.loads(e or "{}"))
            for a, s, r, t, e in rows]


@pytest.fixture(scope="module")
def fpn_search(tmp_path_factory):
    """Table 2 + Table 4 + Table 5 switches in one search (they are independent)."""
    return _run(tmp_path_factory.mktemp("ablation"), "fpn", finetune=0, random=0,
                overrides="{num_blocks: 7, channels: 8, utilization: fpn}")


def test_fpn_style_search_without_random_children_or_fine_tuning(fpn_search):
    out, _ = fpn_search
    trials = _trials(out)
    assert len(trials) >= 4 and all(t[1] == "done" for t in trials)
    assert all(tuple(t[0]["feature_strides"]) == FEATURE_STRIDES for t in trials)
    later = [t for t in trials if t[4]["iteration"] > 0]
    assert later and all(t[4]["origin"] != "random" for t in later)   # random_children: 0
    assert all(t[3]["finetune_steps"] == 0 for t in trials)            # finetune_steps: 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["space_overrides"]["utilization"] == "fpn"


def test_rank_check_ranks_ten_stand_alone_paths_with_a_ci(fpn_search, tmp_path):
    out, _ = fpn_search
    cfg = tmp_path / "fpn.yaml"
    cfg.write_text(BASE.format(finetune=0, random=0,
                               overrides="{num_blocks: 7, channels: 8, utilization: fpn}"))
    r = subprocess.run([sys.executable, "-m", "search.evolution", "rank-check", "--config",
                        str(cfg), "--out", str(out), "--quiet"], capture_output=True,
                       text=True, timeout=900, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((out / "rank_check.json").read_text())
    rows = result["architectures"]
    assert result["n_archs"] == len(rows) == 10
    assert len({json.dumps(row["arch"], sort_keys=True) for row in rows}) == 10
    assert all(tuple(row["arch"]["feature_strides"]) == FEATURE_STRIDES for row in rows)
    for key in ("finetuned", "no_finetune"):
        tau, ci = result[f"kendall_tau_{key}"], result[f"kendall_tau_{key}_ci"]
        assert len(ci) == 2 and (math.isnan(tau) or -1 <= tau <= 1)
        if not math.isnan(ci[0]):
            assert ci[0] <= tau <= ci[1]
    assert "95% bootstrap CI" in r.stdout and "10 architectures" in r.stdout


def test_search_without_range_constraints_scores_paths_outside_eq7(tmp_path):
    out, _ = _run(tmp_path, "free", finetune=1, random=1,
                  overrides="{num_blocks: 3, channels: 8, constraints: false}")
    trials = _trials(out)
    assert all(t[1] == "done" and math.isfinite(t[2]) for t in trials)
    assert all(t[3]["finetune_steps"] == 1 for t in trials)
    outside = [t for t in trials if range_constraint_error(t[0]["feature_strides"])]
    assert outside, "the unconstrained search never left eq. 7's ranges"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["space_overrides"]["constraints"] is False
