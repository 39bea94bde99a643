"""`python -m search --help`: the search framework's three axes and its entry points."""

from __future__ import annotations

import sys

USAGE = """usage: python -m search [--help]

A search is a space x a strategy x an evaluator, chosen in its config (configs/search/):

  python -m search.controller [--config C] [--set KEY=VALUE ...]   main job (PPO, MnasFPN)
  python -m search.evolution  [--config C] [--set KEY=VALUE ...]   MSNAS (evolution, super-net)
  python -m search.space SPACE [--json]                            a space's size and decisions
  python -m search.retrain --search DIR                            search -> deployable detectors

e.g. python -m search.controller --config mnasfpn_random --set evaluator=toy --set budget=50
"""


def _section(title: str, items: dict) -> str:
    width = max(len(k) for k in items)
    return f"{title}:\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in items.items())


def main(argv=None) -> int:
    from search.evaluators import EVALUATOR_HELP
    from search.spaces import SPACE_HELP
    from search.strategies import STRATEGY_HELP
    from search.config import SEARCH_CONFIG_DIR
    configs = {p.stem: p.read_text().splitlines()[0].lstrip("# ").strip()
               for p in sorted(SEARCH_CONFIG_DIR.glob("*.yaml"))}
    print(USAGE)
    print(_section("spaces (space:)", SPACE_HELP) + "\n")
    print(_section("strategies (strategy:)", STRATEGY_HELP) + "\n")
    print(_section("evaluators (evaluator:)", EVALUATOR_HELP) + "\n")
    print(_section("shipped configs (--config NAME)", configs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
