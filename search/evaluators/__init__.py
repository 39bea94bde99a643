"""Evaluators: what a child's score comes from (proxy training, a super-net, a toy)."""

from __future__ import annotations

from typing import Optional


def build_evaluator(config: dict, out_dir: Optional[str] = None):
    """The evaluator a worker holds for a search (config: `SearchConfig.to_dict()`)."""
    from search.child import ChildEvaluator
    return ChildEvaluator(config)


def runs_inline(config: dict) -> bool:
    """Toy children cost nothing: they run on the driver's thread."""
    return config["evaluator"] == "toy"
