"""Search against random on the search's own objective (issue 15, item 4).

    python benchmarks/search_vs_random.py [--config C] [--seeds 0 1 2] [--budget N]
        [--out DIR] [--resume] [--set KEY=VALUE ...] [--json] [--quiet]

For every seed it runs the config's search (default configs/search/default.yaml: PPO)
and random search (strategy random, otherwise identical: same budget, seed, proxy,
latency table and reward), each through `search.driver.Search` in OUT/STRATEGY_seedS,
where every search's own outputs stay. `--resume` reuses finished searches and resumes
killed ones (the search's own resume); without it an existing search is refused.

Per strategy, the mean and std (over seeds, n - 1) of
  - the best reward;
  - the best mAP (the proxy's metric) at or under the target latency (reward.target_ms);
  - the hypervolume of the (latency, mAP) frontier: minimise latency, maximise mAP, from
    the fixed point (2 x target_ms, 0), so the figure compares across budgets and runs
    (children slower than that add nothing).
And where the published cell lands (each search scores it as a reference trial, with the
search's seed): its mAP, latency, reward, rank among the children, and whether the search
found a child at least as fast with a higher mAP.

Writes OUT/search_vs_random.json, OUT/search_vs_random.png (each seed's two frontiers,
the published cell starred) and prints a markdown table; with --json the last line of
stdout is the JSON. `--set evaluator=toy` runs it in seconds (the toy's known optimum).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mnas_tf import console  # noqa: E402,F401  (first: quiets TensorFlow)

RANDOM = "random"
METRICS = ("best_reward", "best_map_at_target", "hypervolume")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python benchmarks/search_vs_random.py",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="search config over the embedded default (a path or a "
                                    "name in configs/search/; default: default)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budget", type=int, help="children per search (default: the config's)")
    p.add_argument("--out", default=os.path.join("runs", "search_vs_random"))
    p.add_argument("--resume", action="store_true",
                   help="reuse finished searches in --out and resume killed ones")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key for both strategies (as the search CLIs)")
    p.add_argument("--json", action="store_true", help="last stdout line: the results")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run_configs(args) -> list:
    """(strategy, seed, SearchConfig) of every search, the config's strategy first."""
    from search.config import SearchConfigError, load_config
    sets = list(args.set) + ([f"budget={args.budget}"] if args.budget is not None else [])
    base = load_config(args.config, sets=sets)
    if base.strategy == RANDOM:
        raise SearchConfigError("the config's strategy is already random; choose the search "
                                "to compare with --set strategy=NAME")
    if base.budget is None:
        raise SearchConfigError("the comparison needs the same budget for both strategies; "
                                "give --budget N")
    return [(strategy, seed, load_config(args.config, sets=sets + [f"strategy={strategy}",
                                                                  f"seed={seed}"]))
            for seed in args.seeds for strategy in (base.strategy, RANDOM)]


def _finished(out: str, budget: int) -> bool:
    """A search that ended (summary.json written) with its whole budget done."""
    from search.store import DB_NAME, DONE, FAILED, TrialStore
    if not os.path.exists(os.path.join(out, "summary.json")):
        return False
    store = TrialStore.open_existing(os.path.join(out, DB_NAME))
    try:
        counts, references = store.counts(), store.references()
    finally:
        store.close()
    return (counts[DONE] + counts[FAILED] >= budget
            and all(t.status in (DONE, FAILED) for t in references))


def run_search(config, out: str, resume: bool, progress: bool) -> str:
    """Runs (or resumes, or reuses) one search; what was done."""
    from search.driver import Search
    from search.store import DB_NAME
    exists = os.path.exists(os.path.join(out, DB_NAME))
    if resume and exists and _finished(out, config.budget):
        return "reused"
    Search(config, out, resume=resume and exists, progress=progress).run()
    return "resumed" if resume and exists else "ran"


def stored_target(out: str, config) -> Optional[float]:
    """The search's reward target as it priced it (a relative target lives in its store)."""
    from search.store import DB_NAME, TrialStore
    store = TrialStore.open_existing(os.path.join(out, DB_NAME))
    try:
        saved = store.get_state("reward_target")
    finally:
        store.close()
    return saved[1]["target_ms"] if saved else config.reward.target_ms


def measure(out: str, target_ms: float) -> dict:
    """One finished search's figures, read from its store."""
    from search.frontier import hypervolume, pareto_front
    from search.references import summary_rows
    from search.store import DB_NAME, DONE, TrialStore
    store = TrialStore.open_existing(os.path.join(out, DB_NAME))
    try:
        scored = [t for t in store.trials(DONE) if t.map is not None and t.reward is not None]
        references = summary_rows(store)
    finally:
        store.close()
    timed = [t for t in scored if t.latency_ms is not None]
    points = [(t.latency_ms, t.map) for t in timed]
    fast = [t.map for t in timed if t.latency_ms <= target_ms]
    for row in references:
        row["beaten"] = None if row["rank"] is None or row["latency_ms"] is None else any(
            t.latency_ms <= row["latency_ms"] and t.map > row["map"] for t in timed)
    return {"out": out, "children": len(scored),
            "best_reward": max((t.reward for t in scored), default=None),
            "best_map_at_target": max(fast, default=None),
            "hypervolume": hypervolume(points, (2 * target_ms, 0.0)) if timed else None,
            "frontier": [points[i] for i in pareto_front(points)],
            "points": points, "references": references}


def mean_std(values: Sequence[Optional[float]]) -> dict:
    import numpy as np
    known = [v for v in values if v is not None]
    if not known:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(known)),
            "std": float(np.std(known, ddof=1)) if len(known) > 1 else 0.0, "n": len(known)}


def summarize(runs: list, strategies: Sequence[str]) -> dict:
    out = {}
    for strategy in strategies:
        mine = [r for r in runs if r["strategy"] == strategy]
        out[strategy] = {m: mean_std([r[m] for r in mine]) for m in METRICS}
        beaten = [ref["beaten"] for r in mine for ref in r["references"][:1]
                  if ref["beaten"] is not None]
        out[strategy]["beats_published"] = {"runs": sum(beaten), "of": len(beaten)}
    return out


def _fmt(stat: dict, digits: int = 4) -> str:
    if stat["mean"] is None:
        return "-"
    return f"{stat['mean']:.{digits}g} ± {stat['std']:.2g}"


def table(result: dict) -> str:
    """The markdown tables: per-strategy figures, then the published cell per run."""
    strategies, summary = result["strategies"], result["summary"]
    metric, target, bound = result["metric"], result["target_ms"], result["hv_reference"]
    lines = [f"| over seeds {result['seeds']} (budget {result['budget']}) | "
             + " | ".join(strategies) + " |", "|---|" + "---|" * len(strategies)]
    names = {"best_reward": "best reward",
             "best_map_at_target": f"best {metric} at <= " + (
                 f"{target:g} ms" if target else "the target (no latency)"),
             "hypervolume": f"hypervolume ((latency, {metric}) from " + (
                 f"({bound[0]:g} ms, 0))" if bound else "- (no latency))")}
    for m in METRICS:
        lines.append(f"| {names[m]} | " + " | ".join(_fmt(summary[s][m]) for s in strategies)
                     + " |")
    lines.append("| a child beats the published cell at <= its latency | " + " | ".join(
        f"{summary[s]['beats_published']['runs']}/{summary[s]['beats_published']['of']} runs"
        for s in strategies) + " |")
    lines += ["", f"| seed | strategy | published cell {metric} | latency (ms) | reward | "
                  f"rank (1 = best) | beaten |", "|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        for ref in r["references"][:1]:
            fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
            lines.append(f"| {r['seed']} | {r['strategy']} | {fmt(ref['map'])} | "
                         f"{fmt(ref['latency_ms'])} | {fmt(ref['reward'])} | "
                         f"{ref['rank'] or ref['status']} of {ref['of']} | "
                         f"{'-' if ref['beaten'] is None else 'yes' if ref['beaten'] else 'no'} |")
    return "\n".join(lines)


def plot(result: dict, path: str) -> None:
    """Each seed's frontiers of both strategies, the published cell starred."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import types
    from search.frontier import mark_references
    seeds = result["seeds"]
    fig, axes = plt.subplots(1, len(seeds), figsize=(4.2 * len(seeds), 3.6), dpi=110,
                             squeeze=False)
    colors = dict(zip(result["strategies"], ("tab:blue", "tab:gray")))
    for ax, seed in zip(axes[0], seeds):
        published = None
        for r in (r for r in result["runs"] if r["seed"] == seed):
            color = colors[r["strategy"]]
            if r["points"]:
                ax.scatter(*zip(*r["points"]), s=10, alpha=0.5, color=color)
                ax.step(*zip(*r["frontier"]), where="post", color=color, lw=1.4,
                        label=f"{r['strategy']} frontier")
            ref = next(iter(r["references"]), None)
            if ref and ref["latency_ms"] is not None and ref["map"] is not None:
                published = published or (ref["label"], types.SimpleNamespace(
                    latency_ms=ref["latency_ms"], map=ref["map"]))
        if published:
            mark_references(ax, [published])
        ax.axvline(result["target_ms"], color="gray", ls="--", lw=1)
        ax.set_title(f"seed {seed}", fontsize=9)
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel(result["metric"])
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{result['strategies'][0]} vs random, budget {result['budget']}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from search.cli import errors
    args = _parser().parse_args(argv)
    args.seeds = list(dict.fromkeys(args.seeds))  # a seed named twice runs once
    try:
        configs = run_configs(args)
        runs, target = [], None
        for strategy, seed, config in configs:
            out = os.path.join(args.out, f"{strategy}_seed{seed}")
            done = run_search(config, out, args.resume, progress=not args.quiet)
            print(f"[search_vs_random] {strategy} seed {seed}: {done} ({out})",
                  file=sys.stderr)
            # one target (and hypervolume point) for every run: the first search's
            target = target or stored_target(out, config)
            runs.append({"strategy": strategy, "seed": seed, **measure(out, target)})
    except errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished searches are kept; continue with --resume",
              file=sys.stderr)
        return 130
    from search.driver import metric_name
    first = configs[0][2]
    result = {"config": args.config or "default", "budget": first.budget,
              "seeds": list(args.seeds), "strategies": [first.strategy, RANDOM],
              "evaluator": first.evaluator, "metric": metric_name(first),
              "target_ms": target,
              "hv_reference": [2 * target, 0.0] if target else None, "runs": runs}
    result["summary"] = summarize(runs, result["strategies"])
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "search_vs_random.json"), "w") as f:
        json.dump(result, f, indent=1)
    plot(result, os.path.join(args.out, "search_vs_random.png"))
    print(table(result))
    print(f"hypervolume reference point: latency {2 * (target or 0):g} ms "
          f"(2 x target), {result['metric']} 0; wrote {args.out}/search_vs_random.json, .png")
    if args.json:
        published = [{"strategy": r["strategy"], "seed": r["seed"],
                      **{k: ref[k] for k in ("name", "map", "latency_ms", "reward", "rank",
                                             "beaten")}}
                     for r in runs for ref in r["references"][:1]]
        print(json.dumps({k: result[k] for k in ("budget", "seeds", "metric", "target_ms",
                                                 "hv_reference", "summary")}
                         | {"published": published}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
