"""`python -m search --help`: the search framework's three axes and its entry points."""

from __future__ import annotations

import sys

USAGE = """usage: python -m search [--help]

A search is a space x a strategy x an evaluator, chosen in its config (configs/search/):

  python -m search.controller [--config C] [--set KEY=VALUE ...]   main job (PPO, MnasFPN)
  python -m search.evolution  [--config C] [--set KEY=VALUE ...]   MSNAS (evolution, super-net)
  python -m search.space SPACE [--json]                            a space's size and decisions
  python -m search.retrain --search DIR                            search -> deployable detectors
  python -m search.proxycheck [--config C] [--archs N] [--seeds S] does the proxy rank? (tau, ICC)
  python -m search.report OUT [--html FILE]                        a view-only HTML report

e.g. python -m search.controller --config mnasfpn_random --set evaluator=toy --set budget=50
"""


SPACE_NOTES = {
    "mnasfpn": "MnasFPN heads (Table 2): F, C, kernel 3/5/7, sum/SE, 5 + 4 blocks",
    "no_expand": "MnasFPN without expansion (F = C)",
    "conn_search": "MnasFPN connectivity only: 2..4 inputs merged by sum",
    "nasfpnlite_s": "NAS-FPNLite-S cells (separable convs, C = 64, sum/attention)",
    "msnas": "MSNAS per-block strides {0.5, 1, 2} + heads' feature strides",
}


def _first_sentence(text: str) -> str:
    """The first sentence of a YAML file's leading comment."""
    words = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        words.append(line.lstrip("# ").strip())
    joined = " ".join(words)
    for end in (". ", ": "):
        if end in joined:
            joined = joined.split(end, 1)[0]
    return joined.rstrip(".:")


def _section(title: str, items: dict) -> str:
    width = max(len(k) for k in items)
    return f"{title}:\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in items.items())


def main(argv=None) -> int:
    from search.evaluators import EVALUATOR_HELP
    from search.spaces import SPACE_NAMES, get_space
    from search.strategies import STRATEGY_HELP
    from search.config import SEARCH_CONFIG_DIR
    configs = {p.stem: _first_sentence(p.read_text())
               for p in sorted(SEARCH_CONFIG_DIR.glob("*.yaml"))}
    spaces = {}
    for name in SPACE_NAMES:
        space = get_space(name)
        spaces[name] = (f"{SPACE_NOTES.get(name, '')}; {float(space.cardinality()):.2g} "
                        f"architectures at its defaults")
    print(USAGE)
    print(_section("spaces (space:, space_overrides:)", spaces) + "\n")
    print(_section("strategies (strategy:)", STRATEGY_HELP) + "\n")
    print(_section("evaluators (evaluator:)", EVALUATOR_HELP) + "\n")
    print(_section("shipped configs (--config NAME)", configs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
