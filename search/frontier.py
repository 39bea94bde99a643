"""The latency/accuracy frontier of a search (the MnasFPN paper's Figures 6 and 7)."""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (latency, accuracy) points: no other point is at least
    as fast and as accurate and strictly better in one. Sorted by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def write_frontier(trials, out_dir: str, target_ms: Optional[float] = None,
                   metric: str = "AP") -> list[dict]:
    """frontier.json (non-dominated trials) and frontier.png (all trials, frontier drawn)."""
    scored = [t for t in trials if t.map is not None and t.latency_ms is not None]
    front = [scored[i] for i in pareto_front([(t.latency_ms, t.map) for t in scored])]
    rows = [{"trial": t.id, "latency_ms": t.latency_ms, "map": t.map, "reward": t.reward,
             "arch": t.arch} for t in front]
    with open(os.path.join(out_dir, "frontier.json"), "w") as f:
        json.dump(rows, f, indent=2)
    if scored:
        _plot(scored, front, os.path.join(out_dir, "frontier.png"), target_ms, metric)
    return rows


def _plot(trials, front, path: str, target_ms: Optional[float], metric: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    dots = ax.scatter([t.latency_ms for t in trials], [t.map for t in trials],
                      c=[t.id for t in trials], cmap="viridis", s=14, alpha=0.8)
    fig.colorbar(dots, ax=ax, label="trial (sampling order)")
    ax.plot([t.latency_ms for t in front], [t.map for t in front], "r-o", ms=4, lw=1.2,
            label="non-dominated")
    if target_ms:
        ax.axvline(target_ms, color="gray", ls="--", lw=1, label=f"target {target_ms:g} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel(f"{metric} (proxy task)")
    ax.set_title("search: all children and the latency/accuracy frontier")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
