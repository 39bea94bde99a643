"""Exploration strategies: what to try next, given the store's finished children.

Every strategy works with every space (`search.spaces`) and every evaluator; the driver
(`search.driver`) asks it for proposals and tells it when results land.
"""

from __future__ import annotations

from search.strategies.base import Proposal, Strategy, StrategyError

STRATEGY_HELP = {
    "ppo": "an LSTM policy over the space's decisions, trained by PPO (MnasNet/MnasFPN)",
    "evolution": "MSNAS Algorithm 1: crossover and mutation of a Top-P population under a "
                 "Select window, T iterations",
    "regularized_evolution": "aging evolution (Real et al. 2019): mutate the best of S drawn "
                             "from the last P children",
    "random": "uniform samples of the space: the baseline every search must beat",
}


def build_strategy(config, space, store, feasible) -> Strategy:
    """The configured strategy, restored from `store` (a resumed search continues)."""
    name = config.strategy
    if name == "ppo":
        from search.strategies.ppo import PPOStrategy as cls
    elif name == "evolution":
        from search.strategies.evolution import Evolution as cls
    elif name == "regularized_evolution":
        from search.strategies.regularized_evolution import RegularizedEvolution as cls
    elif name == "random":
        from search.strategies.random import RandomSearch as cls
    else:
        raise StrategyError(f"strategy {name!r} is unknown; valid: {', '.join(STRATEGY_HELP)}")
    strategy = cls(space, config, store, feasible)
    strategy.restore()
    return strategy


__all__ = ["Proposal", "Strategy", "StrategyError", "STRATEGY_HELP", "build_strategy"]
