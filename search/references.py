"""Reference architectures: named detectors scored once per search beside its children,
so a frontier shows where the search's finds stand against a hand-designed head (by
default the published MnasFPN cell).

A reference is a store trial of role "reference", trained with the search's own seed by
the same executor, evaluator and proxy as a child, priced by the same latency table and
rewarded the same way. It never counts towards the budget, the strategy never sees it,
and it never enters top-k. `reference_architectures: null` means the published cell for
the MnasFPN-family spaces with the proxy or toy evaluator, none otherwise. The published
cell lies inside the mnasfpn space only (its expansions and family are outside
no_expand, conn_search and nasfpnlite_s): elsewhere it is scored all the same, as a
point of comparison, not a child (the toy evaluator gives a spec outside its space 0).
"""

from __future__ import annotations

import os
from typing import Optional

DEFAULT = ("mnasfpn",)
DEFAULT_EVALUATORS = ("proxy", "toy")


def reference_names(config) -> tuple[str, ...]:
    """The config's references, with `null` resolved to the default for its space."""
    if config.reference_architectures is not None:
        return tuple(config.reference_architectures)
    from mnas_tf.spaces import SPACES
    if config.space in SPACES and config.evaluator in DEFAULT_EVALUATORS:
        return DEFAULT
    return ()


def reference_specs(config) -> list[tuple[str, object]]:
    """(name, spec) of every reference, in config order."""
    from mnas_tf.arch import load_architecture
    return [(name, load_architecture(name)) for name in reference_names(config)]


def check_references(config, space) -> None:
    """Refuses (ValueError, one line) a reference that does not load or that the space
    cannot key, naming it and the valid names."""
    from mnas_tf.arch import ArchitectureError, architecture_names, load_architecture
    names = reference_names(config)
    valid = (f"valid: {', '.join(architecture_names())}, a path to a .json architecture, "
             f"or [] for none")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"reference_architectures[{i}] must be an architecture name, "
                             f"got {name!r}; {valid}")
        if name in names[:i]:
            raise ValueError(f"reference_architectures names {name!r} twice")
        try:
            spec = load_architecture(name)
        except ArchitectureError as e:
            first = str(e).splitlines()[0].split("; shipped ones are")[0]
            raise ValueError(f"reference_architectures: {name!r} does not load ({first}); "
                             f"{valid}") from None
        try:
            space.key(spec)
        except Exception as e:  # pylint: disable=broad-except  (any space's refusal)
            takes = valid if getattr(space, "cell_space", None) is not None else (
                "it takes no MnasFPN architecture: set reference_architectures: []")
            why = (str(e).splitlines() or [type(e).__name__])[0][:200]
            raise ValueError(f"reference_architectures: {name!r} does not fit space "
                             f"{config.space} ({why}); {takes}") from None


def label(name: str) -> str:
    """What the plot and the summary line call a reference."""
    from mnas_tf.arch import architecture_names
    if name in architecture_names():
        return f"{name} (published)"
    if name.lstrip().startswith("{"):
        return "inline architecture"
    return os.path.splitext(os.path.basename(name))[0]


def summary_rows(store) -> list[dict]:
    """summary.json's "references": each reference's result and the rank of its reward
    among the distinct scored children and itself (1 = best)."""
    from search.store import DONE
    best: dict[str, float] = {}
    for t in store.trials(DONE):
        if t.reward is not None and t.map is not None:
            best[t.arch_hash] = max(best.get(t.arch_hash, t.reward), t.reward)
    rows = []
    for t in store.references():
        scored = t.status == DONE and t.reward is not None and t.map is not None
        rows.append({"name": t.extra.get("reference"), "label": label(
                         t.extra.get("reference", "")), "trial": t.id, "status": t.status,
                     "map": t.map, "latency_ms": t.latency_ms, "madds": t.madds,
                     "reward": t.reward, "error": t.error,
                     "rank": 1 + sum(r > t.reward for r in best.values()) if scored else None,
                     "of": len(best) + 1})
    return rows


def describe(row: dict, metric: str) -> str:
    """One line: where a reference landed among the children."""
    if row["rank"] is None:
        return (f"reference {row['label']}: {row['status']}"
                + (f" ({row['error']})" if row.get("error") else ""))
    latency = "" if row["latency_ms"] is None else f", {row['latency_ms']:.4g} ms"
    return (f"reference {row['label']}: {metric} {row['map']:.4g}{latency}, reward "
            f"{row['reward']:.4g}: rank {row['rank']} of {row['of']} (the children and "
            f"itself; 1 = best)")


def reference_trials(store, status: Optional[str] = None) -> list[tuple[str, object]]:
    """(label, trial) of the reference trials, for the frontier plot."""
    return [(label(t.extra.get("reference", "")), t) for t in store.references(status)]
