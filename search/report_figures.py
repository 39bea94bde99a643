"""The search report's figures, each one self-contained (a PNG data URI or inline SVG):
the frontier and the per-iteration progress come from `search.frontier`, the cells from
`mnas_tf.arch.draw`, the latency split from `latency.breakdown`."""

from __future__ import annotations

import base64
import io
from typing import Optional

from search import frontier

PART_COLORS = {"backbone": "#5d6d7e", "head": "#e67e22", "predictor": "#2e86c1",
               "overhead": "#bdc3c7"}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def data_uri(buffer: io.BytesIO) -> Optional[str]:
    data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode() if data else None


def _save(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    _pyplot().close(fig)
    return data_uri(buffer)


def target_ms(record) -> Optional[float]:
    """The search's reward target as it priced it (a relative target is in the store)."""
    value = (record.states.get("reward_target") or {}).get("target_ms")
    if value is None:
        value = (record.config.get("reward") or {}).get("target_ms")
    return float(value) if isinstance(value, (int, float)) else None


def frontier_png(record) -> Optional[str]:
    """All done children, the non-dominated ones and the reference trials as stars."""
    buffer = io.BytesIO()
    done = [(t.extra.get("reference", f"trial {t.id}"), t) for t in record.references()
            if t.status == "done"]
    if not frontier.plot_frontier(record.children(), buffer, target_ms(record),
                                  record.metric(), done):
        return None
    return data_uri(buffer)


def over_trials_png(record) -> Optional[str]:
    """Reward, score and cost of every finished trial by trial id."""
    finished = [t for t in record.trials if t.status in ("done", "failed")]
    if not finished:
        return None
    cost = "latency_ms" if any(t.latency_ms is not None for t in finished) else "madds"
    rows = [(key, label) for key, label in (
        ("reward", "reward"), ("map", record.metric()),
        (cost, "latency (ms)" if cost == "latency_ms" else "MAdds"))
        if any(getattr(t, key) is not None for t in finished)]
    if not rows:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.2 + 1.8 * len(rows)), dpi=100,
                             sharex=True, squeeze=False)
    axes = axes[:, 0]
    for ax, (key, label) in zip(axes, rows):
        for role, style in (("child", dict(s=12, c="#2e86c1", alpha=0.7)),
                            ("reference", dict(s=90, marker="*", c="orange",
                                               edgecolors="k"))):
            points = [(t.id, getattr(t, key)) for t in finished
                      if record.roles[t.id] == role and getattr(t, key) is not None]
            if points:
                ax.scatter(*zip(*points), label=role if key == "reward" else None, **style)
        if key == "reward":
            points = [(t.id, t.reward) for t in finished
                      if record.roles[t.id] == "child" and t.reward is not None]
            if points:
                best, line = float("-inf"), []
                for trial_id, value in points:
                    best = max(best, value)
                    line.append((trial_id, best))
                ax.plot(*zip(*line), "r-", lw=1, label="best so far")
            failed = [t.id for t in finished if t.status == "failed"]
            for trial_id in failed:
                ax.axvline(trial_id, color="#c0392b", alpha=0.25, lw=1)
            ax.legend(fontsize=8, loc="lower right")
        ax.set_ylabel(label)
    axes[-1].set_xlabel("trial id (failed trials: red lines)")
    fig.tight_layout()
    return _save(fig)


def strategy_png(record) -> tuple[Optional[str], str]:
    """The strategy's own curve: the PPO controller's entropy and baseline by update, or
    the evolution's population best and mean by iteration; (None, why) otherwise."""
    strategy = record.config.get("strategy")
    if strategy == "ppo":
        series = [(tag, record.scalars.get(f"controller/{tag}", []))
                  for tag in ("entropy", "baseline")]
        if not any(points for _, points in series):
            state = record.states.get("controller", {})
            return None, (f"no PPO update logged yet (updates {state.get('updates', 0)}, "
                          f"entropy {state.get('entropy')}, baseline {state.get('baseline')})")
        plt = _pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(8, 3), dpi=100)
        for ax, (tag, points) in zip(axes, series):
            if points:
                ax.plot(*zip(*points), "o-", ms=3)
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_xlabel("PPO update")
            ax.set_title(f"controller {tag}", fontsize=10)
        fig.tight_layout()
        return _save(fig), "PPO controller (TensorBoard scalars in OUT/tensorboard)"
    if strategy == "evolution":
        buffer = io.BytesIO()
        frontier.plot_progress(record.children(), buffer, record.metric())
        uri = data_uri(buffer)
        return uri, ("evolution: population best and mean by iteration" if uri else
                     "no evolution iteration has a scored child yet")
    return None, f"strategy {strategy!r} keeps no curve of its own (see reward over trials)"


def cell_svg(arch: dict) -> str:
    """A trial's architecture drawn (ValueError for one that no longer validates)."""
    from mnas_tf.arch.draw import draw, load_any
    return draw(load_any(arch))


def latency_split(record, best) -> tuple[Optional[str], str]:
    """(SVG bars of the backbone / head / predictor latency of the best child and of the
    reference trials, note) from an existing latency table for the search's latency
    settings; (None, why) otherwise."""
    if record.config.get("space") == "msnas":
        return None, ("the latency table prices MnasFPN-family heads; an MSNAS search is "
                      "costed in MAdds, so there is no latency split")
    if best is None:
        return None, "no scored child yet"
    from latency.breakdown import find_table, latency_breakdown
    from latency.errors import LatencyError
    from mnas_tf.config_files import ConfigError
    cfg = record.config.get("latency") or {}
    quant = cfg.get("quant", "float32")
    rows = [(f"best child (trial {best.id})", best)] + [
        (f"{t.extra.get('reference', 'reference')} (trial {t.id})", t)
        for t in record.references()]
    try:
        path, why = find_table(cfg.get("backend", "host"), int(cfg.get("threads", 1)), quant,
                               cfg.get("table_dir"))
        if path is None:
            return None, why + " (the report never builds one: `python -m latency.lut build`)"
        from latency.lut import load_shape
        from mnas_tf.arch import MnasFPNSpec
        size = int(cfg.get("input_size", 320))
        _, shape = load_shape(cfg.get("experiment", "mnasfpn_mobilenetv2_coco"),
                              (size, size), quant)
        result = latency_breakdown(path, shape, [MnasFPNSpec.from_dict(t.arch)
                                                 for _, t in rows])
    except (LatencyError, ConfigError, ValueError, OSError) as e:
        return None, f"no latency split: {e}"
    bars = [(label, split["parts_ms"]) for (label, _), split in zip(rows, result["splits"])
            if "parts_ms" in split]
    skipped = [f"{label}: {split['error']}" for (label, _), split in
               zip(rows, result["splits"]) if "error" in split]
    note = f"{result['table']} (speed probe not re-run)" + "".join(
        f"; not priced: {text}" for text in skipped)
    return (split_svg(bars) if bars else None), note


def split_svg(bars: list) -> str:
    """Stacked bars of latency parts (label, {part: ms}), like the MnasFPN paper's Fig. 5;
    one scale for all bars, so they compare."""
    from mnas_tf.arch.svg import Svg
    longest = max(sum(max(v, 0.0) for v in parts.values()) for _, parts in bars) or 1.0
    label_w, bar_w, pitch = 210, 560, 46
    svg = Svg(label_w + bar_w + 150, 70 + pitch * len(bars),
              "predicted latency: backbone / head / predictor (ms)")
    for row, (label, parts) in enumerate(bars):
        y = 44 + row * pitch
        svg.text(24, y + 20, label, size=11, anchor="start")
        x = 24.0 + label_w
        for name, ms in parts.items():
            w = bar_w * max(ms, 0.0) / longest
            svg.rect(x, y, max(w, 0.5), 28, fill=PART_COLORS.get(name, "#999"), stroke="#fff")
            if w > 44:
                svg.text(x + w / 2, y + 18, f"{ms:.1f}", size=10, color="#fff")
            x += w
        svg.text(x + 6, y + 18, f"{sum(parts.values()):.2f} ms", size=11, anchor="start")
    x, y = 24.0 + label_w, 52 + pitch * len(bars)
    for name, color in PART_COLORS.items():
        svg.rect(x, y - 10, 12, 12, fill=color, stroke="#fff")
        svg.text(x + 16, y, name, size=11, anchor="start")
        x += 110
    return str(svg)
