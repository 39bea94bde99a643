"""MSNAS evolutionary search (paper Algorithm 1) over a trained super-net.

    python -m search.evolution [--config configs/search/msnas_NAME.yaml] [--resume]
                               [--out DIR] [--population P] [--iterations T]
    python -m search.evolution rank-check [--config ...] [--out DIR]

Iteration 0 is P random valid paths that pass Select (the constraint). Iteration t makes
children of pop_{t-1} with the four operators (crossover/mutation of encoder strides and
of feature strides) for at most M attempts or until P children pass Select, adds the
R random draws that pass Select, scores them, and keeps Top-P of pop_t and pop_{t-1}.
Children are new architectures only (SPOS-style de-duplication), so no candidate is
scored twice.

Durability: every candidate is a store row before it is scored, and the population is
saved after each iteration. Iteration t's candidates depend only on pop_{t-1} and an RNG
seeded by (seed, t), so a resumed run regenerates exactly the same candidates, reuses
the finished rows, re-runs only the one that was in flight, and loses nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable, Optional, Sequence

import numpy as np

from mnas_tf import console  # first: quiets TensorFlow before it loads
from mnas_tf.arch.msnas import MSNASSpec
from search.msnas_config import ConfigError, load_config
from search.spaces.msnas import MSNASSpace
from search.store import ConfigMismatch, StoreError

POPULATION_STATE = "evolution"
OPERATORS = ("crossover_encoder", "mutate_encoder", "crossover_features", "mutate_features")


def _hash(spec: MSNASSpec) -> str:
    from search.store import arch_hash
    return arch_hash(spec.search_key())


class Evolution:
    """Algorithm 1 with a durable TrialStore; `score(spec) -> (metrics, timings)`."""

    def __init__(self, space: MSNASSpace, constraint, score: Callable, store, cfg: dict,
                 progress: bool = True, log: Callable[[str], None] = print):
        self.space, self.constraint, self.score_fn, self.store = space, constraint, score, store
        e = cfg["evolution"]
        self.P, self.T, self.M = e["population"], e["iterations"], e["max_attempts"]
        self.R, self.k, self.prob = e["random_children"], e["top_k"], e["mutation_prob"]
        self.score_key, self.seed = e["score"], cfg["seed"]
        self.progress, self.log = progress, log

    # -------------------------------------------------------------- candidates
    def _seen_before(self, t: int) -> set:
        return {tr.arch_hash for tr in self.store.trials()
                if tr.extra.get("iteration", -1) < t}

    def candidates(self, t: int, population: list) -> list[tuple[MSNASSpec, str]]:
        """(spec, origin) of iteration t; deterministic given pop_{t-1} and (seed, t)."""
        from search.msnas_pipeline import sample_selected
        rng = np.random.default_rng([self.seed, t])
        seen = self._seen_before(t)
        if t == 0:
            return [(s, "random") for s in sample_selected(self.space, self.constraint, rng,
                                                           self.P, seen)]
        out: list = []
        taken = set(seen)
        parents = [MSNASSpec.from_dict(p["arch"]) for p in population]

        def offer(spec, origin):
            if spec is None or len(out) >= self.P or not self.constraint(spec):
                return
            h = _hash(spec)
            if h not in taken:
                taken.add(h)
                out.append((spec, origin))

        for _ in range(self.M if parents else 0):
            if len(out) >= self.P:
                break
            a = parents[int(rng.integers(len(parents)))]
            b = parents[int(rng.integers(len(parents)))]
            offer(self.space.crossover_encoder(a, b, rng), "crossover_encoder")
            offer(self.space.mutate_encoder(a, rng, self.prob), "mutate_encoder")
            offer(self.space.crossover_features(a, b, rng), "crossover_features")
            offer(self.space.mutate_features(a, rng, self.prob), "mutate_features")
        for _ in range(self.R):  # R attempts of random valid children, then Select
            spec = self.space.sample(rng)
            if self.constraint(spec) and _hash(spec) not in taken:
                taken.add(_hash(spec))
                out.append((spec, "random"))
        return out

    # -------------------------------------------------------------- scoring
    def evaluate(self, t: int, candidates: list) -> list[dict]:
        """Scores the candidates of iteration t, reusing rows a killed run left behind."""
        from tqdm import tqdm
        mine = {tr.arch_hash: tr for tr in self.store.trials()
                if tr.extra.get("iteration") == t}
        ids = []
        with self.store.transaction():
            for spec, origin in candidates:
                h = _hash(spec)
                ids.append(mine[h].id if h in mine else self.store.add(
                    spec.search_key(), h, self.seed, extra={"iteration": t, "origin": origin}))
        results = []
        bar = tqdm(list(zip(ids, candidates)), desc=f"iteration {t}", unit="arch",
                   disable=not self.progress, leave=False, dynamic_ncols=True)
        for trial_id, (spec, _) in bar:
            trial = self.store.get(trial_id)
            if trial.status not in ("done", "failed"):
                self.store.start(trial_id)
                madds = float(self.constraint.madds(spec))
                try:
                    metrics, timings = self.score_fn(spec)
                    self.store.finish(trial_id, map=metrics.get("AP"), madds=madds,
                                      reward=metrics[self.score_key], metrics=metrics,
                                      timings=timings)
                except Exception as e:  # a failing path is recorded, not fatal
                    self.store.finish(trial_id, status="failed", madds=madds,
                                      error=f"{type(e).__name__}: {e}"[:500])
                trial = self.store.get(trial_id)
            if trial.status == "done":
                results.append({"arch": trial.arch, "hash": trial.arch_hash,
                                "score": trial.reward, "madds": trial.madds,
                                "trial": trial.id, "iteration": t})
                bar.set_postfix(best=f"{max(r['score'] for r in results):.4f}")
        return results

    # -------------------------------------------------------------- loop
    def run(self) -> list[dict]:
        state = self.store.get_state(POPULATION_STATE)
        population = json.loads(state[0]) if state else []
        start = state[1]["iteration"] + 1 if state else 0
        for t in range(start, self.T + 1):
            t0 = time.perf_counter()
            scored = self.evaluate(t, self.candidates(t, population))
            merged = {p["hash"]: p for p in population + scored}
            population = sorted(merged.values(), key=lambda p: (-p["score"], p["trial"]))
            population = population[:self.P]
            self.store.put_state(POPULATION_STATE, json.dumps(population).encode(),
                                 {"iteration": t})
            scores = [p["score"] for p in population]
            self.log(f"iteration {t}/{self.T}: scored {len(scored)} new, population best "
                     f"{max(scores):.4f} mean {np.mean(scores):.4f} "
                     f"({time.perf_counter() - t0:.0f} s)")
        return population[:self.k]


# ------------------------------------------------------------------------ outputs
def plot_progress(store, path: str, score_key: str, population_size: int) -> None:
    """One-shot score of every scored candidate by iteration (the paper's Figure 3)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    done = [t for t in store.trials("done") if "iteration" in t.extra]
    its = np.array([t.extra["iteration"] for t in done])
    scores = np.array([t.reward for t in done])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(its, scores, s=10, alpha=0.5, label="candidates")
    steps = sorted(set(its))
    # pop_t = Top-P of pop_{t-1} and the new candidates = Top-P of all scored up to t
    population = [np.sort(scores[its <= i])[::-1][:population_size] for i in steps]
    ax.plot(steps, [p.max() for p in population], "r-", label="population best")
    ax.plot(steps, [p.mean() for p in population], "k--", label="population mean")
    ax.set_xlabel("evolution iteration")
    ax.set_ylabel(f"one-shot {score_key}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_top_k(top: list, out_dir: str, score_key: str) -> str:
    """top_k.json plus one loadable architecture file per winner (top_k/NAME.json)."""
    os.makedirs(os.path.join(out_dir, "top_k"), exist_ok=True)
    for rank, p in enumerate(top, 1):
        name = f"msnas_found_{rank}"
        data = {"name": name, "source": f"search {out_dir}: one-shot {score_key} "
                f"{p['score']:.4f}, MAdds {p['madds']:.0f}", **p["arch"]}
        with open(os.path.join(out_dir, "top_k", f"{name}.json"), "w") as f:
            f.write(json.dumps(data) + "\n")
    path = os.path.join(out_dir, "top_k.json")
    with open(path, "w") as f:
        json.dump(top, f, indent=1)
    return path


# ------------------------------------------------------------------------ CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m search.evolution", description=__doc__.split(
        "\n")[0])
    p.add_argument("command", nargs="?", default="search", choices=("search", "rank-check"))
    p.add_argument("--config", help="YAML overriding the embedded default")
    p.add_argument("--out", default="runs/msnas_evolution", help="output directory")
    p.add_argument("--resume", action="store_true", help="continue the search in --out")
    p.add_argument("--population", type=int, help="P (evolution.population)")
    p.add_argument("--iterations", type=int, help="T (evolution.iterations)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _store(cfg: dict, constraint, out_dir: str, resume: bool):
    from search.store import open_store
    stored = dict(cfg, constraint=dict(cfg["constraint"], target=constraint.target))
    return open_store(out_dir, stored, resume, name="trials.sqlite")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(console.cli(argv))
    try:
        cfg = load_config(args.config, evolution__population=args.population,
                          evolution__iterations=args.iterations)
        from search.msnas_pipeline import resolve_constraint
        constraint = resolve_constraint(cfg)
        if args.command == "rank-check":
            os.makedirs(args.out, exist_ok=True)
            return _rank_check(cfg, constraint, args)
        return _search(cfg, constraint, _store(cfg, constraint, args.out, args.resume), args)
    except (ConfigError, ConfigMismatch, StoreError) as e:  # e.g. an unknown experiment
        print(f"error: {e}", file=sys.stderr)
        return 2


def _search(cfg, constraint, store, args) -> int:
    from search import msnas_pipeline as pipe
    log = print
    requeued = store.requeue_running()
    if requeued:
        log(f"resume: trial(s) {requeued} were in flight and will run again")
    t0 = time.perf_counter()
    trainer = pipe.build_trainer(cfg)
    sn = pipe.train_supernet(trainer, cfg, args.out, store, progress=not args.quiet)
    log(f"super-net: {cfg['supernet']['steps']} steps ({sn['steps_run']} run now), "
        f"median step {sn['median_step_s'] or 0:.3f} s, {sn['traces']} trace(s)")
    pipe.load_finetune_batches(trainer, cfg, args.out)
    t1 = time.perf_counter()
    evo = Evolution(pipe.space_of(cfg), constraint,
                    lambda spec: trainer.score(spec, cfg["finetune"]["steps"]), store, cfg,
                    progress=not args.quiet, log=log)
    top = evo.run()
    score_key = cfg["evolution"]["score"]
    path = write_top_k(top, args.out, score_key)
    plot_progress(store, os.path.join(args.out, "evolution.png"), score_key,
                  cfg["evolution"]["population"])
    summary = {"supernet": sn, "evolution_s": time.perf_counter() - t1,
               "total_s": time.perf_counter() - t0, "trials": store.counts(),
               "constraint_target_madds": constraint.target}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    log(f"top-{len(top)} -> {path}; plot -> {os.path.join(args.out, 'evolution.png')}")
    for p in top:
        log(f"  {score_key} {p['score']:.4f}  MAdds {p['madds'] / 1e6:.1f}M  strides "
            f"{p['arch']['strides']}  heads {p['arch']['feature_strides']}")
    return 0


def _rank_check(cfg, constraint, args) -> int:
    from search import msnas_pipeline as pipe
    trainer = pipe.build_trainer(cfg)  # reuses a finished super-net of a search in --out
    pipe.train_supernet(trainer, cfg, args.out, progress=not args.quiet)
    pipe.load_finetune_batches(trainer, cfg, args.out)
    result = pipe.rank_check(trainer, cfg, constraint, progress=not args.quiet)
    with open(os.path.join(args.out, "rank_check.json"), "w") as f:
        json.dump(result, f, indent=1)
    key = result["score"]
    print(f"{'one-shot':>10} {'fine-tuned':>10} {'stand-alone':>11}  ({key}, "
          f"{len(result['architectures'])} architectures)")
    for r in result["architectures"]:
        print(f"{r['one_shot']:10.4f} {r['one_shot_finetuned']:10.4f} {r['stand_alone']:11.4f}")
    print(f"Kendall tau, with fine-tuning:    {result['kendall_tau_finetuned']:.3f}")
    print(f"Kendall tau, without fine-tuning: {result['kendall_tau_no_finetune']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
