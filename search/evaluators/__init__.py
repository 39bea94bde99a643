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


class PrepareError(RuntimeError):
    """The evaluator's one-off preparation failed; the message is one line."""


def prepare_in_process(config, out_dir: str, progress: bool = True) -> Optional[dict]:
    """The evaluator's `prepare` (warm start, super-net training) in a spawned process of
    its own, so its TensorFlow state never leaks into the caller and its progress shows up
    front; returns its figures for summary.json. Model Garden and pycocotools print to
    stdout: that goes to OUT/logs/prepare.log, the progress bar (stderr) stays."""
    import concurrent.futures as futures
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        figures, error = pool.submit(_prepare, config.to_dict(), out_dir, progress).result()
    if error:
        raise PrepareError(error)
    return figures


def _prepare(config: dict, out_dir: str, progress: bool):
    """(figures, error or None) of `prepare`, run in the spawned process."""
    import contextlib
    import os
    from search.config import load_config
    config = load_config(overrides=config)
    log = os.path.join(out_dir, "logs", "prepare.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    try:
        with open(log, "a") as f, contextlib.redirect_stdout(f):
            return evaluator_class(config.evaluator).prepare(config, out_dir, progress), None
    except Exception as e:  # pylint: disable=broad-except  (one line for the user)
        return None, f"{config.evaluator} evaluator: {type(e).__name__}: {e}"
