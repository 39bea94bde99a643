"""python -m search.proxycheck: does the search's proxy rank architectures, or is it noise?

Before a long search, check the proxy on a few architectures (Vertex AI NAS asks its users
for 10-20): this samples N architectures from the config's space, plus the published cell
where the space has one, and trains each

- under the config's evaluator (the proxy) with S seeds, and
- under a longer reference schedule: the proxy's training for K steps, same data, seed 0
  (`--reference-set KEY=VALUE` changes more of it, e.g. proxy.freeze_backbone=false).

It reports, per architecture, the proxy's mean and std over seeds and the reference score;
overall, the seed noise against the spread between architectures (ICC(1), signal-to-noise
ratio), and Kendall tau and Spearman between proxy and reference with bootstrap 95% CIs
(`search.fidelity`), plus a scatter plot. Every run is a row of OUT/proxycheck.sqlite
before it starts (the search's store), so `--resume` after a kill -9 loses or repeats
nothing; the same child with the same seed scores the same (deterministic children).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Optional, Sequence

from mnas_tf import console  # noqa: F401  (first: quiets TensorFlow before it loads)

import numpy as np  # noqa: E402

from search import store as trial_store  # noqa: E402

DB_NAME = "proxycheck.sqlite"
PROXY, REFERENCE = "proxy", "reference"
PUBLISHED = "mnasfpn"  # the published cell: the reference point of every MnasFPN-family space
GOAL_TAU, GOAL_SNR, GOAL_ARCHS = 0.6, 3.0, 12


class CheckError(RuntimeError):
    """A check that cannot start or continue; the message says what to do."""


# ----------------------------------------------------------------------------- configs
def check_configs(config, reference_steps: Optional[int], reference_sets: Sequence[str] = ()):
    """(proxy config, reference config): the search's evaluator without latency or MAdds
    (only scores matter here), and the reference schedule. The reference of a toy
    evaluator is its noise-free objective; of any other, the proxy trained for
    `reference_steps` (default 3x the proxy's steps)."""
    from search.config import load_config
    base = config.to_dict()
    base.update(record_madds=False, latency={**base["latency"], "source": "none"})
    if config.evaluator == "toy":
        reference = {**base, "toy": {**base["toy"], "noise": 0.0}}
    else:
        steps = reference_steps or 3 * config.proxy.train_steps
        reference = {**base, "evaluator": "proxy",
                     "proxy": {**base["proxy"], "train_steps": steps}}
    return (load_config(overrides=base),
            load_config(overrides=reference, sets=reference_sets))


def pick_architectures(space, n: int, seed: int) -> list[tuple[str, dict]]:
    """The published cell (MnasFPN-family spaces) and `n` distinct samples, as
    (name, canonical arch) pairs; the same seed always picks the same ones."""
    picked: list[tuple[str, dict]] = []
    seen = set()
    if getattr(space, "cell_space", None) is not None:
        from mnas_tf.arch import load_architecture
        arch = space.key(load_architecture(PUBLISHED))
        picked.append((f"{PUBLISHED} (published)", arch))
        seen.add(trial_store.arch_hash(arch))
    rng = np.random.default_rng(seed)
    sampled = 0
    for _ in range(100 * n):
        if sampled == n:
            break
        arch = space.key(space.sample(rng))
        key = trial_store.arch_hash(arch)
        if key not in seen:
            seen.add(key)
            sampled += 1
            picked.append((f"sample {sampled}", arch))
    return picked


# ----------------------------------------------------------------------------- the run
class ProxyCheck:
    """The check's store, its runs and its report."""

    def __init__(self, config, out_dir: str, archs: int, seeds: int,
                 reference_steps: Optional[int], reference_sets: Sequence[str] = (),
                 resume: bool = False, workers: Optional[int] = None, progress: bool = True):
        from search.spaces import get_space
        if archs < 2 or seeds < 1:
            raise CheckError(f"--archs must be >= 2 and --seeds >= 1 (got {archs}, {seeds})")
        if reference_steps is not None and reference_steps <= 0:
            raise CheckError(f"--reference-steps must be positive, got {reference_steps}")
        self.proxy, self.reference = check_configs(config, reference_steps, reference_sets)
        self.out_dir, self.progress = out_dir, progress
        self.workers = workers or config.workers
        self.space = get_space(config.space, config.space_overrides)
        settings = {"archs": archs, "seeds": seeds, "seed": config.seed,
                    "proxy": self.proxy.run_config(),
                    "reference": self.reference.run_config()}
        self.settings = settings
        self.store = trial_store.open_store(out_dir, {"proxycheck": settings}, resume, DB_NAME)
        if not self.store.trials():
            self._plan(archs, seeds)

    def _plan(self, archs: int, seeds: int) -> None:
        """Every run of the check, as pending rows, in one transaction."""
        picked = pick_architectures(self.space, archs, self.settings["seed"])
        with self.store.transaction():
            for phase, seed_list in ((PROXY, range(seeds)), (REFERENCE, (0,))):
                for index, (name, arch) in enumerate(picked):
                    for seed in seed_list:
                        self.store.add(arch, trial_store.arch_hash(arch), seed,
                                       extra={"phase": phase, "index": index, "name": name})

    def run(self) -> dict:
        from tqdm import tqdm
        requeued = self.store.requeue_running()
        rows = self.store.trials()
        done = sum(t.status in (trial_store.DONE, trial_store.FAILED) for t in rows)
        bar = tqdm(total=len(rows), initial=done, unit="run", desc="proxycheck",
                   disable=not self.progress, dynamic_ncols=True)
        log = bar.write if self.progress else (lambda m: print(m, file=sys.stderr))
        if requeued:
            log(f"[proxycheck] resumed: {len(requeued)} run(s) that were running are "
                f"requeued")
        try:
            for phase, config in ((PROXY, self.proxy), (REFERENCE, self.reference)):
                pending = [t for t in self.store.trials(trial_store.PENDING)
                           if t.extra.get("phase") == phase]
                if pending:
                    self._run_phase(phase, config, pending, bar, log)
        finally:
            bar.close()
        return self.report()

    def _run_phase(self, phase: str, config, pending, bar, log) -> None:
        import dataclasses
        from search.evaluators import evaluator_class, prepare_in_process
        from search.executors import make_executor
        cls = evaluator_class(config.evaluator)
        if cls.needs_prepare and not cls.is_prepared(config, self.out_dir):
            log(f"[proxycheck] preparing the {config.evaluator} evaluator ({phase} runs)")
            prepare_in_process(config, self.out_dir, self.progress)
        executor = make_executor("local", dataclasses.replace(config, workers=self.workers),
                                 log_dir=os.path.join(self.out_dir, "logs"),
                                 out_dir=self.out_dir)
        retries: dict[int, int] = {}
        try:
            for t in pending:
                self.store.start(t.id)
                executor.submit(t.id, t.arch, t.seed)
            while executor.running():
                for trial_id, result in executor.wait():
                    if result["status"] == "lost":
                        retries[trial_id] = retries.get(trial_id, 0) + 1
                        if retries[trial_id] <= config.max_retries:
                            log(f"[proxycheck] run {trial_id} lost its worker "
                                f"({result.get('error')}); retry {retries[trial_id]}")
                            t = self.store.get(trial_id)
                            self.store.requeue(trial_id)
                            self.store.start(trial_id)
                            executor.submit(trial_id, t.arch, t.seed)
                            continue
                    self._record(trial_id, result, log)
                    bar.update(1)
        finally:
            executor.shutdown()

    def _record(self, trial_id: int, result: dict, log) -> None:
        ok = result["status"] == "done"
        self.store.finish(trial_id, status=trial_store.DONE if ok else trial_store.FAILED,
                          map=result.get("map") if ok else None, error=result.get("error"),
                          metrics=result.get("metrics"), timings=result.get("timings"))
        t = self.store.get(trial_id)
        log(f"[proxycheck] {t.extra['phase']} {t.extra['name']} seed {t.seed}: "
            + (f"{_fmt(t.map)} ({_fmt(t.timings.get('total_s'))} s)" if ok else
               f"failed: {t.error}"))

    # ------------------------------------------------------------------------- report
    def report(self) -> dict:
        from search.fidelity import kendall_tau, rank_agreement, rank_of, seed_noise
        rows = self.store.trials()
        names: dict[int, str] = {}
        proxy: dict[int, dict[int, float]] = {}
        reference: dict[int, float] = {}
        failed = []
        for t in rows:
            index = t.extra["index"]
            names[index] = t.extra["name"]
            if t.status == trial_store.FAILED:
                failed.append({"phase": t.extra["phase"], "name": t.extra["name"],
                               "seed": t.seed, "error": t.error})
            if t.status != trial_store.DONE:
                continue
            if t.extra["phase"] == PROXY:
                proxy.setdefault(index, {})[t.seed] = t.map
            else:
                reference[index] = t.map
        per_arch = []
        for index in sorted(names):
            scores = proxy.get(index, {})
            values = np.array(list(scores.values()), float)
            per_arch.append({
                "index": index, "name": names[index],
                "proxy_scores": {str(s): v for s, v in sorted(scores.items())},
                "proxy_mean": float(values.mean()) if len(values) else None,
                "proxy_std": float(values.std(ddof=1)) if len(values) > 1 else None,
                "reference": reference.get(index)})
        usable = [a for a in per_arch if a["proxy_mean"] is not None
                  and a["reference"] is not None]
        means = [a["proxy_mean"] for a in usable]
        refs = [a["reference"] for a in usable]
        noise = seed_noise([list(a["proxy_scores"].values()) for a in per_arch])
        agreement = rank_agreement(means, refs)
        single = []
        for s in range(self.settings["seeds"]):
            pairs = [(a["proxy_scores"].get(str(s)), a["reference"]) for a in usable]
            pairs = [p for p in pairs if p[0] is not None]
            if len(pairs) >= 3:
                single.append(kendall_tau([p[0] for p in pairs], [p[1] for p in pairs]))
        published = next((i for i, a in enumerate(usable) if a["name"].startswith(PUBLISHED)),
                         None)
        out = {
            **agreement,
            "seed_std": noise["seed_std"], "between_arch_std": noise["between_arch_std"],
            "snr": noise["snr"], "icc": noise["icc"],
            "single_seed_kendall_tau": _mean(single),
            "single_seed_kendall_taus": single,
            "published": None if published is None else {
                "proxy_rank": rank_of(means, published),
                "reference_rank": rank_of(refs, published), "of": len(usable),
                "proxy_mean": means[published], "reference": refs[published]},
            "complete": all(t.status in (trial_store.DONE, trial_store.FAILED) for t in rows),
            "runs": len(rows), "failed": failed,
            "settings": {"archs": len(per_arch), "seeds": self.settings["seeds"],
                         "seed": self.settings["seed"],
                         "space": self.proxy.space, "evaluator": self.proxy.evaluator,
                         "metric": _metric(self.proxy),
                         "proxy_steps": self.proxy.proxy.train_steps,
                         "reference_steps": (None if self.reference.evaluator == "toy"
                                             else self.reference.proxy.train_steps)},
            "per_arch": per_arch,
        }
        out["goals"] = goals(out)
        with open(os.path.join(self.out_dir, "proxycheck.json"), "w") as f:
            json.dump(out, f, indent=1, default=_json_default)
        if len(usable) >= 2:
            plot(out, os.path.join(self.out_dir, "proxycheck.png"))
        return out


def goals(report: dict) -> dict:
    """The issue's bar for a proxy that ranks: tau >= 0.6 with the CI's lower bound above
    0, on >= 12 architectures, and seed std below a third of the between-arch std."""
    tau, low = report["kendall_tau"], report["kendall_tau_ci"][0]
    return {"kendall_tau": bool(tau >= GOAL_TAU and low > 0),
            "archs": report["n_archs"] >= GOAL_ARCHS,
            "seed_noise": bool(report["seed_std"] < report["between_arch_std"] / GOAL_SNR)}


def _metric(config) -> str:
    from search.driver import metric_name
    return metric_name(config)


def _mean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def plot(report: dict, path: str) -> None:
    """Left: proxy mean (+- seed std) against the reference score, the published cell
    starred. Right: every seed's score per architecture, in reference order, so seed
    noise and the between-architecture spread are seen side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    archs = [a for a in report["per_arch"] if a["proxy_mean"] is not None
             and a["reference"] is not None]
    metric = report["settings"]["metric"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    x = [a["reference"] for a in archs]
    y = [a["proxy_mean"] for a in archs]
    err = [a["proxy_std"] or 0.0 for a in archs]
    left.errorbar(x, y, yerr=err, fmt="o", ms=5, capsize=3, alpha=0.85, label="sampled")
    for a in archs:
        if a["name"].startswith(PUBLISHED):
            left.plot(a["reference"], a["proxy_mean"], "r*", ms=14, label=a["name"])
    ci = report["kendall_tau_ci"]
    left.set_title(f"Kendall tau {report['kendall_tau']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}], "
                   f"Spearman {report['spearman']:.2f}", fontsize=10)
    steps = report["settings"]["reference_steps"]
    left.set_xlabel(f"reference {metric}" + (f" ({steps} steps, seed 0)" if steps else ""))
    left.set_ylabel(f"proxy {metric} (mean +- std over seeds)")
    left.legend(fontsize=8, loc="best")
    order = sorted(range(len(archs)), key=lambda i: archs[i]["reference"])
    for pos, i in enumerate(order):
        values = list(archs[i]["proxy_scores"].values())
        colour = "r" if archs[i]["name"].startswith(PUBLISHED) else "C0"
        right.plot([pos] * len(values), values, "o", color=colour, alpha=0.7, ms=4)
    right.set_xticks(range(len(order)))
    right.set_xticklabels([archs[i]["name"].replace(" (published)", "*").replace("sample ", "s")
                           for i in order], rotation=60, fontsize=7)
    right.set_xlabel("architecture (by reference score)")
    right.set_ylabel(f"proxy {metric}, one dot per seed")
    right.set_title(f"seed std {_fmt(report['seed_std'])} vs between-arch std "
                    f"{_fmt(report['between_arch_std'])} (ICC {_fmt(report['icc'])})",
                    fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------- the CLI
def summary_lines(report: dict) -> list[str]:
    metric = report["settings"]["metric"]
    lines = [f"{'architecture':<22} {'proxy mean':>10} {'std':>8} {'reference':>10}"]
    for a in report["per_arch"]:
        lines.append(f"{a['name']:<22} {_fmt(a['proxy_mean']):>10} {_fmt(a['proxy_std']):>8} "
                     f"{_fmt(a['reference']):>10}")
    ci, sci = report["kendall_tau_ci"], report["spearman_ci"]
    g = report["goals"]
    lines += [
        f"{report['n_archs']} architectures x {report['settings']['seeds']} seeds, {metric}; "
        f"reference: {report['settings']['reference_steps'] or 'noise-free'} steps",
        f"Kendall tau {_fmt(report['kendall_tau'])} [95% CI {_fmt(ci[0])}, {_fmt(ci[1])}]"
        f" (goal >= {GOAL_TAU}, CI above 0: {'met' if g['kendall_tau'] else 'MISSED'}); "
        f"Spearman {_fmt(report['spearman'])} [{_fmt(sci[0])}, {_fmt(sci[1])}]",
        f"one seed per child (as a search runs): Kendall tau "
        f"{_fmt(report['single_seed_kendall_tau'])}",
        f"seed std {_fmt(report['seed_std'])}, between-arch std "
        f"{_fmt(report['between_arch_std'])}, signal/noise {_fmt(report['snr'])}, ICC(1) "
        f"{_fmt(report['icc'])} (goal: seed std < between/3: "
        f"{'met' if g['seed_noise'] else 'MISSED'})"]
    if report["published"]:
        p = report["published"]
        lines.append(f"published cell: proxy rank {p['proxy_rank']}/{p['of']}, reference rank "
                     f"{p['reference_rank']}/{p['of']}")
    if report["failed"]:
        lines.append(f"{len(report['failed'])} run(s) failed: "
                     + "; ".join(f"{f['phase']} {f['name']} seed {f['seed']}: {f['error']}"
                                 for f in report["failed"][:3]))
    return lines


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m search.proxycheck", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="search YAML over the embedded default (a path or a name "
                                    "in configs/search/; default: the embedded default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a search config key (dotted, repeatable)")
    p.add_argument("--archs", type=int, default=11,
                   help="architectures sampled from the space, besides the published cell "
                        "(default 11: 12 with the published cell)")
    p.add_argument("--seeds", type=int, default=2, help="proxy seeds per architecture "
                                                        "(default 2)")
    p.add_argument("--reference-steps", type=int,
                   help="training steps of the reference schedule (default 3x the proxy's)")
    p.add_argument("--reference-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the reference runs only, e.g. "
                        "proxy.freeze_backbone=false")
    p.add_argument("--workers", type=int, help="runs at once (default: the config's workers)")
    p.add_argument("--out", help="output directory (default runs/proxycheck_SPACE_EVALUATOR)")
    p.add_argument("--resume", action="store_true", help="continue the check in --out")
    p.add_argument("--json", action="store_true",
                   help="the last line of stdout is the report as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    console.add_flag(p)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    console.setup(args.verbose)
    from search.cli import errors
    from search.config import load_config
    from search.evaluators import PrepareError
    new_db = None
    try:
        from search.data import resolve_data
        config = resolve_data(load_config(args.config, sets=args.set), progress=not args.quiet)
        out = args.out or os.path.join("runs", f"proxycheck_{config.space}_{config.evaluator}")
        if not args.resume and not os.path.exists(os.path.join(out, DB_NAME)):
            new_db = os.path.join(out, DB_NAME)
        start = time.perf_counter()
        check = ProxyCheck(config, out, args.archs, args.seeds, args.reference_steps,
                           args.reference_set, args.resume, args.workers,
                           progress=not args.quiet)
        report = check.run()
    except (*errors(), CheckError, PrepareError) as e:
        if new_db:
            trial_store.discard_unused(new_db)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every finished run is saved; continue with --resume",
              file=sys.stderr)
        return 130
    for line in summary_lines(report):
        print(line)
    written = [n for n in (DB_NAME, "proxycheck.json", "proxycheck.png")
               if os.path.exists(os.path.join(out, n))]
    print(f"results: {out} ({', '.join(written)}; {time.perf_counter() - start:.0f} s)")
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "per_arch"} | {
            "archs": [{k: a[k] for k in ("name", "proxy_mean", "proxy_std", "reference")}
                      for a in report["per_arch"]]}, default=_json_default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
