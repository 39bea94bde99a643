"""`python -m search.retrain`: from a finished search to deployable detectors (paper §4.2).

    python -m search.retrain --search DIR --targets 15 25 [--repeats 3] [--top 1]
        [--experiment mnasfpn_synthetic] [--train-steps N] [--out DIR/retrain] [--no-export]

For each latency target, takes the `--top` children with the best proxy mAP among those
predicted at or under the target, re-trains each `--repeats` times on the full task
(different seeds), keeps the architectures that are non-dominated in (latency, mean mAP),
and exports those to TFLite (float32, raw outputs). Repeats already trained are reused, so
an interrupted retrain resumes. Writes retrain.json with every row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

from mnas_tf import console  # noqa: E402  (first: quiets TensorFlow before it loads)

import numpy as np  # noqa: E402

from search import store as trial_store  # noqa: E402
from search.frontier import pareto_front  # noqa: E402


def select(trials, targets: Sequence[float], top: int) -> list:
    """Per target, the `top` best-mAP children at or under it (each architecture once)."""
    chosen, seen = [], set()
    for target in sorted(targets):
        fits = sorted((t for t in trials if t.latency_ms is not None and t.map is not None
                       and t.latency_ms <= target), key=lambda t: -t.map)
        picked = 0
        for t in fits:
            if picked == top:
                break
            picked += 1
            if t.arch_hash not in seen:
                seen.add(t.arch_hash)
                chosen.append((target, t))
    return chosen


def retrain_one(trial, experiment: str, repeats: int, train_steps: Optional[int],
                out_dir: str) -> dict:
    """Trains `repeats` seeds of the trial's architecture (skipping finished ones)."""
    import tf_keras

    from mnas_tf import train
    from mnas_tf.arch import MnasFPNSpec
    spec = MnasFPNSpec.from_dict(trial.arch)
    runs = []
    for r in range(repeats):
        model_dir = os.path.join(out_dir, trial.arch_hash, f"seed{r}")
        metrics_file = os.path.join(model_dir, "metrics.json")
        if not os.path.exists(metrics_file):
            overrides = [{"task": {"model": {"decoder": {"mnasfpn": {
                "architecture": spec.to_json()}}}}}]
            if train_steps:
                overrides.append({"trainer": {"train_steps": train_steps,
                                              "validation_interval": train_steps,
                                              "checkpoint_interval": train_steps}})
            params = train.load_params(experiment, [], [json.dumps(o) for o in overrides])
            tf_keras.backend.clear_session()
            tf_keras.utils.set_random_seed(r)
            train.run(params, model_dir, "train_and_eval")
        with open(metrics_file) as f:
            runs.append({"seed": r, "model_dir": model_dir, **json.load(f)})
    aps = np.array([run["AP"] for run in runs])
    return {"trial": trial.id, "arch_hash": trial.arch_hash, "latency_ms": trial.latency_ms,
            "proxy_map": trial.map, "map_mean": float(aps.mean()),
            "map_std": float(aps.std()), "runs": runs, "arch": trial.arch}


def export_row(row: dict, experiment: str, out_dir: str) -> str:
    from export import tflite
    best = max(row["runs"], key=lambda run: run["AP"])
    path = os.path.join(out_dir, f"{row['arch_hash']}.tflite")
    override = json.dumps({"task": {"model": {"decoder": {"mnasfpn": {
        "architecture": json.dumps(row["arch"])}}}}})
    code = tflite.main(["--experiment", experiment, "--checkpoint", best["model_dir"],
                        "--out", path, "--params-override", override])
    if code != 0:
        raise RuntimeError(f"export of trial {row['trial']} failed (exit {code})")
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.retrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--search", required=True, help="output directory of the search")
    parser.add_argument("--targets", type=float, nargs="+", required=True,
                        help="latency targets in ms (as predicted by the search)")
    parser.add_argument("--top", type=int, default=1, help="children per target")
    parser.add_argument("--repeats", type=int, default=3, help="seeds per architecture")
    parser.add_argument("--experiment", default="mnasfpn_synthetic",
                        help="the full task to re-train on")
    parser.add_argument("--train-steps", type=int, help="override the experiment's schedule")
    parser.add_argument("--out", help="default SEARCH/retrain")
    parser.add_argument("--no-export", action="store_true")
    args = parser.parse_args(console.cli(argv))
    from mnas_tf.experiment import ConfigError, load_experiment
    try:  # before any trial is picked: a typo must not cost a selection
        load_experiment(args.experiment)
    except ConfigError as e:
        print(f"error: --experiment: {e}", file=sys.stderr)
        return 2
    db = os.path.join(args.search, "search.sqlite")
    if not os.path.exists(db):
        print(f"error: {db} does not exist; --search must be the --out of a search",
              file=sys.stderr)
        return 2
    if args.repeats < 1 or args.top < 1 or any(t <= 0 for t in args.targets):
        print("error: --repeats and --top must be >= 1 and every target > 0", file=sys.stderr)
        return 2
    out = args.out or os.path.join(args.search, "retrain")
    os.makedirs(out, exist_ok=True)
    trials = trial_store.TrialStore.open_existing(db).trials(trial_store.DONE)
    chosen = select(trials, args.targets, args.top)
    if not chosen:
        print(f"error: no child is predicted at or under {min(args.targets)} ms; raise the "
              f"targets (children range {min((t.latency_ms for t in trials if t.latency_ms), default=0):.1f}"
              f" ms and up)", file=sys.stderr)
        return 2
    rows = []
    for target, trial in chosen:
        print(f"[retrain] target {target:g} ms: trial {trial.id} ({trial.latency_ms:.2f} ms, "
              f"proxy mAP {trial.map:.4f}), {args.repeats} seed(s)")
        rows.append({"target_ms": target, **retrain_one(trial, args.experiment, args.repeats,
                                                        args.train_steps, out)})
    keep = set(pareto_front([(r["latency_ms"], r["map_mean"]) for r in rows]))
    for i, row in enumerate(rows):
        row["non_dominated"] = i in keep
        if i in keep and not args.no_export:
            row["tflite"] = export_row(row, args.experiment, out)
    with open(os.path.join(out, "retrain.json"), "w") as f:
        json.dump(rows, f, indent=2)
    for row in rows:
        print(f"trial {row['trial']}: {row['latency_ms']:.2f} ms, mAP {row['map_mean']:.4f} "
              f"+- {row['map_std']:.4f}{'  (non-dominated)' if row['non_dominated'] else ''}"
              f"{'  -> ' + row['tflite'] if row.get('tflite') else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
