"""A search's result files: the cost/score frontier (the MnasFPN paper's Figures 6 and 7),
the score by child or evolution iteration (MSNAS Figure 3), and the top-k architectures;
and the frontier's measures (`pareto_front`, `hypervolume`) that benchmarks compare."""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (cost, accuracy) points: no other point is at least
    as cheap and as accurate and strictly better in one. Sorted by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def hypervolume(points: Sequence[tuple[float, float]], ref: tuple[float, float]) -> float:
    """The area dominated by (cost, accuracy) points (lower cost, higher accuracy) and
    bounded by `ref` = (the worst cost counted, the lowest accuracy counted): the larger,
    the better the frontier. Points at or beyond `ref` in either coordinate add nothing."""
    inside = [(c, a) for c, a in points if c < ref[0] and a > ref[1]]
    front = [inside[i] for i in pareto_front(inside)]  # cost up, accuracy up
    area = 0.0
    for i, (cost, accuracy) in enumerate(front):
        right = front[i + 1][0] if i + 1 < len(front) else ref[0]
        area += (right - cost) * (accuracy - ref[1])
    return area


def _cost(trials) -> tuple[str, str]:
    """Latency where the search has it, else MAdds (an accuracy-only search)."""
    if any(t.latency_ms is not None for t in trials):
        return "latency_ms", "latency (ms)"
    return "madds", "MAdds"


def write_frontier(trials, out_dir: str, target_ms: Optional[float] = None,
                   metric: str = "AP", references: Sequence[tuple[str, object]] = ()) -> list[dict]:
    """frontier.json (non-dominated children) and frontier.png (all children, the frontier
    drawn, and each (label, trial) of `references` marked by a star)."""
    front = _front(trials)[3]
    rows = [{"trial": t.id, "latency_ms": t.latency_ms, "madds": t.madds, "map": t.map,
             "reward": t.reward, "arch": t.arch} for t in front]
    with open(os.path.join(out_dir, "frontier.json"), "w") as f:
        json.dump(rows, f, indent=2)
    plot_frontier(trials, os.path.join(out_dir, "frontier.png"), target_ms, metric,
                  references)
    return rows


def _front(trials) -> tuple:
    """(cost key, its label, the scored trials, the non-dominated ones)."""
    key, label = _cost(trials)
    scored = [t for t in trials if t.map is not None and getattr(t, key) is not None]
    front = [scored[i] for i in pareto_front([(getattr(t, key), t.map) for t in scored])]
    return key, label, scored, front


def plot_frontier(trials, path, target_ms: Optional[float], metric: str,
                  references: Sequence[tuple[str, object]] = ()) -> bool:
    """The frontier figure to `path` (a file name or a binary file object), each
    (label, trial) of `references` (e.g. the published cell) drawn as a named star; False
    when nothing has both a score and a cost."""
    key, label, scored, front = _front(trials)
    marked = [(name, t) for name, t in references
              if t.map is not None and getattr(t, key, None) is not None]
    if not (scored or marked):
        return False
    _plot(scored, front, path, key, label, target_ms if key == "latency_ms" else None,
          metric, marked)
    return True


def mark_references(ax, references, key: str = "latency_ms") -> None:
    """A labelled star per (label, trial): where the hand-designed cells stand."""
    for i, (name, t) in enumerate(references):
        ax.scatter([getattr(t, key)], [t.map], marker="*", s=180, color=f"C{(i + 1) % 10}",
                   edgecolors="black", linewidths=0.6, zorder=5, label=name)
        ax.annotate(name, (getattr(t, key), t.map), textcoords="offset points",
                    xytext=(6, 6), fontsize=7)


def _plot(trials, front, path, key: str, label: str, target_ms: Optional[float],
          metric: str, references=()) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    if trials:
        dots = ax.scatter([getattr(t, key) for t in trials], [t.map for t in trials],
                          c=[t.id for t in trials], cmap="viridis", s=14, alpha=0.8)
        fig.colorbar(dots, ax=ax, label="trial (sampling order)")
        ax.plot([getattr(t, key) for t in front], [t.map for t in front], "r-o", ms=4,
                lw=1.2, label="non-dominated")
    mark_references(ax, references, key)
    if target_ms:
        ax.axvline(target_ms, color="gray", ls="--", lw=1, label=f"target {target_ms:g} ms")
    ax.set_xlabel(label)
    ax.set_ylabel(metric)
    ax.set_title("search: all children and the cost/score frontier")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_progress(trials, path: str, metric: str) -> None:
    """Reward of every scored child, by evolution iteration where the strategy has them
    (with the Top-P population's best and mean) or by child, with the best so far."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    scored = [t for t in trials if t.reward is not None and t.map is not None]
    if not scored:
        return
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    rewards = np.array([t.reward for t in scored])
    if all("iteration" in t.extra for t in scored):
        its = np.array([t.extra["iteration"] for t in scored])
        ax.scatter(its, rewards, s=10, alpha=0.5, label="children")
        steps = sorted(set(its))
        size = max(int((its == 0).sum()), 1)
        population = [np.sort(rewards[its <= i])[::-1][:size] for i in steps]
        ax.plot(steps, [p.max() for p in population], "r-", label="population best")
        ax.plot(steps, [p.mean() for p in population], "k--", label="population mean")
        ax.set_xlabel("evolution iteration")
    else:
        order = np.arange(1, len(scored) + 1)
        ax.scatter(order, rewards, s=10, alpha=0.5, label="children")
        ax.plot(order, np.maximum.accumulate(rewards), "r-", label="best so far")
        ax.set_xlabel("child (finish order)")
    ax.set_ylabel(f"reward ({metric})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_top_k(top, out_dir: str, config, metric: str) -> str:
    """top_k.json plus one loadable architecture file per winner (top_k/NAME.json)."""
    os.makedirs(os.path.join(out_dir, "top_k"), exist_ok=True)
    rows = []
    for rank, t in enumerate(top, 1):
        name = f"{config.space}_found_{rank}"
        data = {"name": name, "source": f"search {out_dir} ({config.strategy}, "
                f"{config.evaluator}): trial {t.id}, {metric} {t.map:.4f}, reward "
                f"{t.reward:.4f}", **t.arch}
        with open(os.path.join(out_dir, "top_k", f"{name}.json"), "w") as f:
            f.write(json.dumps(data) + "\n")
        rows.append({"rank": rank, "trial": t.id, "score": t.reward, "map": t.map,
                     "latency_ms": t.latency_ms, "madds": t.madds, "arch": t.arch,
                     "file": os.path.join("top_k", f"{name}.json")})
    path = os.path.join(out_dir, "top_k.json")
    with open(path, "w") as f:
        json.dump(rows, f, indent=1)
    return path
