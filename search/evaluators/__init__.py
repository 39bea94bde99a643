"""Evaluators: where a child's score comes from.

    proxy     train the child briefly on the proxy task, then COCO-evaluate (MnasFPN)
    supernet  inherit a trained super-net's weights, fine-tune briefly, evaluate (MSNAS)
    toy       a known optimum and no training (tests, benchmarks)

Objectives and constraints sit on top (`search.objectives`, `search.rewards`,
`search.constraints`): latency from the table or a measurement, MAdds, the MnasNet
reward, or a hard Select window.
"""

from __future__ import annotations

from typing import Optional

EVALUATOR_HELP = {
    "proxy": "train on the proxy task, then COCO mAP (MnasFPN-family spaces)",
    "supernet": "one-shot: a trained super-net's weights, a short fine-tune, COCO mAP "
                "(msnas)",
    "toy": "a known optimum, no training (tests and benchmarks; toy.delay_s per child)",
}


def evaluator_class(name: str):
    if name == "proxy":
        from search.evaluators.proxy import ProxyEvaluator as cls
    elif name == "supernet":
        from search.evaluators.supernet import SupernetEvaluator as cls
    elif name == "toy":
        from search.evaluators.toy import ToyEvaluator as cls
    else:
        raise ValueError(f"evaluator {name!r} is unknown; valid: {', '.join(EVALUATOR_HELP)}")
    return cls


def build_evaluator(config, out_dir: Optional[str] = None):
    """The evaluator a worker holds (config: a SearchConfig or its `to_dict()`, which
    crosses process boundaries)."""
    if isinstance(config, dict):
        from search.config import load_config
        config = load_config(overrides=config)
    return evaluator_class(config.evaluator)(config, out_dir)


def runs_inline(config) -> bool:
    """Toy children cost nothing: they run on the driver's thread."""
    evaluator = config["evaluator"] if isinstance(config, dict) else config.evaluator
    return evaluator == "toy"
