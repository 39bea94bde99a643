"""`python -m search.controller`: the main job, latency-aware PPO over MnasFPN heads.

    python -m search.controller [--config NAME|PATH] [--set KEY=VALUE ...] [--out DIR]
                                [--resume] [--executor local|ray] [--address ADDR]
                                [--budget N] [--quiet]

With no arguments it runs the embedded default (configs/search/default.yaml) on the
synthetic dataset: an LSTM policy samples heads from the MnasFPN space, each child trains
on the proxy task (in worker processes or Ray actors), is priced by the latency look-up
table, and PPO learns from reward = mAP x (latency / target)^w. A config may choose any
space x strategy x evaluator (`python -m search --help`), e.g.
`--config mnasfpn_random` or `--set strategy=regularized_evolution`.

Everything lands in DIR/search.sqlite as it happens; `--resume` after a kill continues
with no finished child lost or repeated. DIR also gets frontier.json/png, progress.png,
top_k.json (+ top_k/*.json architectures), summary.json and TensorBoard scalars. The
published cell (`reference_architectures`) is trained once beside the children, outside
the budget: starred on frontier.png, ranked in summary.json and in the last lines printed.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from mnas_tf import console  # noqa: F401  (first: quiets TensorFlow before it loads)

from search import cli  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = cli.parser("python -m search.controller", __doc__, None).parse_args(
        console.cli(argv))
    return cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
