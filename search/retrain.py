"""`python -m search.retrain`: from a finished search to deployable detectors (paper §4.2).

    python -m search.retrain --search DIR [--targets MS MS MS] [--top 1] [--repeats 3 4 5]
        [--seeds 1] [--experiment mnasfpn_synthetic] [--train-steps N] [--out DIR/retrain]
        [--no-measure] [--no-export]

The paper: "we compute the performance frontier over all the sampled models, and fetch the
top models at 166 ms, 173 ms and 180 ms simulated latency. Then we increase the repeats
from 3 and 5 to generate a total of 3 x 3 = 9 models. Among them we extract the
performance frontier by only keeping models that are not dominated in both latency and
mAP by any other model." So, per latency target (default 0.9x, 1.0x and 1.1x the search's
`reward.target_ms`), the `--top` best-mAP children predicted at or under it (distinct
architectures), each rebuilt at every cell repeat count of `--repeats`; each model is
trained `--seeds` times on the full task, priced by the search's latency table and
measured end to end on the search's latency backend. The models non-dominated in
(latency, mean mAP) are exported to TFLite (float32, raw outputs). Models already trained
or measured are reused, so an interrupted retrain resumes. Writes retrain.json.
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

TARGET_RATIOS = (0.9, 1.0, 1.1)


def select(trials, targets: Sequence[float], top: int) -> list:
    """Per target, the `top` best-mAP children at or under it that no tighter target took
    already: as many distinct architectures as asked wherever enough exist."""
    chosen, seen = [], set()
    for target in sorted(targets):
        fits = sorted((t for t in trials if t.latency_ms is not None and t.map is not None
                       and t.latency_ms <= target), key=lambda t: (-t.map, t.id))
        picked = 0
        for t in fits:
            if picked < top and t.arch_hash not in seen:
                seen.add(t.arch_hash)
                chosen.append((target, t))
                picked += 1
    return chosen


def _json_cache(path: str, compute):
    """`compute()` once; its JSON result is kept at `path` for a resumed retrain."""
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    value = compute()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(value, f)
    os.replace(path + ".tmp", path)
    return value


def model_key(spec) -> str:
    from mnas_tf.spaces import canonical_dict
    return trial_store.arch_hash(canonical_dict(spec))


def train_seeds(spec, experiment: str, seeds: int, train_steps: Optional[int],
                out_dir: str, params_override: Sequence[str] = ()) -> list[dict]:
    """Trains `seeds` seeds of `spec` on the full task (skipping finished ones)."""
    import tf_keras

    from mnas_tf import train
    runs = []
    for r in range(seeds):
        model_dir = os.path.join(out_dir, model_key(spec), f"seed{r}")
        metrics_file = os.path.join(model_dir, "metrics.json")
        if not os.path.exists(metrics_file):
            overrides = [{"task": {"model": {"decoder": {"mnasfpn": {
                "architecture": spec.to_json()}}}}}]
            if train_steps:
                overrides.append({"trainer": {
                    "train_steps": train_steps, "steps_per_loop": train_steps,
                    "summary_interval": train_steps, "validation_interval": train_steps,
                    "checkpoint_interval": train_steps}})
            params = train.load_params(experiment, [], [*params_override,
                                                        *(json.dumps(o) for o in overrides)])
            tf_keras.backend.clear_session()
            tf_keras.utils.set_random_seed(r)
            train.run(params, model_dir, "train_and_eval")
        with open(metrics_file) as f:
            runs.append({"seed": r, "model_dir": model_dir, **json.load(f)})
    return runs


class Pricer:
    """The search's own latency: its table's prediction and an end-to-end measurement on
    its backend (built lazily: a retrain that reuses every result needs neither)."""

    def __init__(self, config, measure: bool):
        self.config, self.measure = config, measure
        self._predict = self._evaluator = None

    def predicted_ms(self, spec) -> Optional[float]:
        if self.config.latency.source != "lut":
            return None
        if self._predict is None:
            from search.objectives import latency_predictor
            from search.spaces import get_space
            space = get_space(self.config.space, self.config.space_overrides)
            self._predict = latency_predictor(self.config, space.cell_space, progress=True)
        from mnas_tf.spaces import canonical_dict
        return float(self._predict(canonical_dict(spec)))

    def measured_ms(self, spec) -> Optional[float]:
        if not self.measure:
            return None
        if self._evaluator is None:
            from search.objectives import LatencyMeter
            self._evaluator = LatencyMeter(self.config)
        return float(self._evaluator.measure(spec))


def retrain_model(target: float, trial, repeats: int, args, pricer: Pricer) -> dict:
    """One of the sweep's models: the trial's cell at `repeats` cell repeats."""
    from mnas_tf.arch import MnasFPNSpec
    spec = MnasFPNSpec.from_dict(trial.arch).replace(repeats=repeats)
    key = model_key(spec)
    runs = train_seeds(spec, args.experiment, args.seeds, args.train_steps, args.out,
                       args.params_override)
    latency = _json_cache(os.path.join(args.out, key, "latency.json"), lambda: {
        "predicted_ms": pricer.predicted_ms(spec), "measured_ms": pricer.measured_ms(spec)})
    aps = np.array([run["AP"] for run in runs])
    measured = latency.get("measured_ms")
    return {"target_ms": target, "trial": trial.id, "search_arch_hash": trial.arch_hash,
            "arch_hash": key, "repeats": repeats, "search_latency_ms": trial.latency_ms,
            "proxy_map": trial.map, **latency,
            "latency_ms": measured if measured is not None else latency.get("predicted_ms"),
            "map_mean": float(aps.mean()), "map_std": float(aps.std()), "runs": runs,
            "arch": spec.to_dict()}


def export_row(row: dict, args) -> str:
    from export import tflite
    best = max(row["runs"], key=lambda run: run["AP"])
    path = os.path.join(args.out, f"{row['arch_hash']}.tflite")
    override = json.dumps({"task": {"model": {"decoder": {"mnasfpn": {
        "architecture": json.dumps(row["arch"])}}}}})
    argv = ["--experiment", args.experiment, "--checkpoint", best["model_dir"], "--out", path]
    for text in [*args.params_override, override]:
        argv += ["--params-override", text]
    code = tflite.main(argv)
    if code != 0:
        raise RuntimeError(f"export of {row['arch_hash']} failed (exit {code})")
    return path


def _search_config(store_config: dict):
    from search.config import load_config
    derived = ("space_layout", "framework_layout", "constraint_target")
    data = {k: v for k, v in store_config.items() if k not in derived}
    if "update_every" in data:  # a store from before the search framework
        data["ppo"] = dict(data.get("ppo", {}), update_every=data.pop("update_every"))
    config = load_config(overrides=data)
    if config.space == "msnas":
        raise ValueError("search.retrain rebuilds MnasFPN-family heads; this search's space "
                         "is msnas (its top_k/*.json files are its architectures)")
    return config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m search.retrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--search", required=True, help="output directory of the search")
    parser.add_argument("--targets", type=float, nargs="+",
                        help="latency targets in ms, as the search priced children (default: "
                             "0.9x, 1.0x and 1.1x the search's reward.target_ms)")
    parser.add_argument("--top", type=int, default=1, help="architectures per target")
    parser.add_argument("--repeats", type=int, nargs="+", default=[3, 4, 5],
                        help="cell repeats each architecture is rebuilt at (paper: 3, 4, 5)")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per model")
    parser.add_argument("--experiment", default="mnasfpn_synthetic",
                        help="the full task to re-train on")
    parser.add_argument("--train-steps", type=int, help="override the experiment's schedule")
    parser.add_argument("--params-override", action="append", default=[],
                        help="Model Garden override of the full task (repeatable), as "
                             "python -m mnas_tf.train takes it")
    parser.add_argument("--out", help="default SEARCH/retrain")
    parser.add_argument("--no-measure", action="store_true",
                        help="skip the end-to-end latency measurement")
    parser.add_argument("--no-export", action="store_true")
    console.add_flag(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(console.cli(argv))
    from mnas_tf.experiment import ConfigError, load_experiment
    from search.config import SearchConfigError
    try:  # before any trial is picked: a typo must not cost a selection
        load_experiment(args.experiment)
    except ConfigError as e:
        print(f"error: --experiment: {e}", file=sys.stderr)
        return 2
    db = os.path.join(args.search, trial_store.DB_NAME)
    if not os.path.exists(db):
        print(f"error: {db} does not exist; --search must be the --out of a search",
              file=sys.stderr)
        return 2
    if args.seeds < 1 or args.top < 1 or min(args.repeats) < 1 or \
            any(t <= 0 for t in args.targets or ()):
        print("error: --seeds, --top and every --repeats must be >= 1 and every target > 0",
              file=sys.stderr)
        return 2
    try:
        store = trial_store.TrialStore.open_existing(db)
        config = _search_config(store.config)
    except (ConfigError, SearchConfigError, trial_store.StoreError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if config.data is not None:  # the search's own data: retrain and export on it too
        import dataclasses

        from mnas_tf.data import DataError
        from mnas_tf.data.user import data_override
        try:
            override = data_override(dataclasses.asdict(config.data), progress=False)
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        args.params_override = [json.dumps(override), *args.params_override]
    saved = store.get_state("reward_target")  # a relative target, as the search priced it
    search_target = saved[1]["target_ms"] if saved else config.reward.target_ms
    if not args.targets and search_target is None:
        print("error: the search has no latency target; give --targets", file=sys.stderr)
        return 2
    targets = args.targets or [round(r * search_target, 3) for r in TARGET_RATIOS]
    args.out = args.out or os.path.join(args.search, "retrain")
    os.makedirs(args.out, exist_ok=True)
    trials = store.trials(trial_store.DONE)
    chosen = select(trials, targets, args.top)
    if not chosen:
        print(f"error: no child is priced at or under {min(targets)} ms; raise the targets "
              f"(children range {min((t.latency_ms for t in trials if t.latency_ms), default=0):.1f}"
              f" ms and up)", file=sys.stderr)
        return 2
    pricer = Pricer(config, measure=not args.no_measure)
    rows = []
    try:
        for target, trial in chosen:
            for repeats in args.repeats:
                print(f"[retrain] target {target:g} ms: trial {trial.id} "
                      f"({trial.latency_ms:.2f} ms, proxy mAP {trial.map:.4f}) at {repeats} "
                      f"cell repeats, {args.seeds} seed(s)")
                rows.append(retrain_model(target, trial, repeats, args, pricer))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    keep = set(pareto_front([(r["latency_ms"], r["map_mean"]) for r in rows]))
    for i, row in enumerate(rows):
        row["non_dominated"] = i in keep
        if i in keep and not args.no_export:
            row["tflite"] = export_row(row, args)
    with open(os.path.join(args.out, "retrain.json"), "w") as f:
        json.dump(rows, f, indent=2)
    for row in rows:
        print(f"trial {row['trial']} x{row['repeats']}: predicted {_ms(row['predicted_ms'])}, "
              f"measured {_ms(row['measured_ms'])}, mAP {row['map_mean']:.4f} +- "
              f"{row['map_std']:.4f}{'  (non-dominated)' if row['non_dominated'] else ''}"
              f"{'  -> ' + row['tflite'] if row.get('tflite') else ''}")
    return 0


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f} ms"


if __name__ == "__main__":
    sys.exit(main())
