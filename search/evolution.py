"""`python -m search.evolution`: MSNAS, evolution over the stride space's super-net.

    python -m search.evolution [--config NAME|PATH] [--set KEY=VALUE ...] [--out DIR]
                               [--resume] [--population P] [--iterations T] [--quiet]
    python -m search.evolution rank-check [--config ...] [--out DIR]

With no --config it runs configs/search/msnas_default.yaml: a super-net over per-block
strides {0.5, 1, 2} trained once by uniform single-path sampling, then Algorithm 1
(crossover and mutation of encoder strides and of feature strides under a Select window
on MAdds) scoring each candidate with inherited weights and a short fine-tune. It is the
same driver as `search.controller`: a config may choose any space x strategy x evaluator.

`rank-check` measures how well one-shot scores rank paths (Kendall tau against stand-alone
training), reusing the super-net a search trained in --out.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Optional, Sequence

from mnas_tf import console  # noqa: F401  (first: quiets TensorFlow before it loads)

from search import cli  # noqa: E402

DEFAULT = "msnas_default"


def _parser():
    p = cli.parser("python -m search.evolution", __doc__, DEFAULT)
    p.add_argument("command", nargs="?", default="search", choices=("search", "rank-check"))
    p.add_argument("--population", type=int, help="P (same as --set evolution.population=P)")
    p.add_argument("--iterations", type=int, help="T (same as --set evolution.iterations=T)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(console.cli(argv))
    sets = [f"evolution.{key}={value}" for key, value in
            (("population", args.population), ("iterations", args.iterations))
            if value is not None]
    if args.command == "rank-check":
        return _rank_check(args, sets)
    return cli.run(args, sets)


def _rank_check(args, sets) -> int:
    from search.config import default_out_dir
    from search.constraints import build_constraint
    from search.evaluators.supernet import training
    from search.spaces import get_space
    try:
        config = cli.load(args, sets)
        if config.evaluator != "supernet":
            print(f"error: rank-check checks a super-net; the config's evaluator is "
                  f"{config.evaluator}", file=sys.stderr)
            return 2
        out = args.out or default_out_dir(config)
        os.makedirs(out, exist_ok=True)
        space = get_space(config.space, config.space_overrides)
        from search.driver import stored_target  # the search's own window, not re-measured
        constraint = build_constraint(config, space, stored_target(out, resume=True))
        trainer = training.build_trainer(config, space)  # reuses a search's super-net in out
        training.train_supernet(trainer, config, space, out, progress=not args.quiet)
        training.load_finetune_batches(trainer, config, out)
        result = training.rank_check(trainer, config, space, constraint,
                                     progress=not args.quiet)
    except cli.errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with open(os.path.join(out, "rank_check.json"), "w") as f:
        json.dump(result, f, indent=1)
    key = result["score"]
    print(f"{'one-shot':>10} {'fine-tuned':>10} {'stand-alone':>11}  ({key}, "
          f"{len(result['architectures'])} architectures)")
    for r in result["architectures"]:
        print(f"{r['one_shot']:10.4f} {r['one_shot_finetuned']:10.4f} {r['stand_alone']:11.4f}")
    for label, key in (("with", "finetuned"), ("without", "no_finetune")):
        low, high = result[f"kendall_tau_{key}_ci"]
        print(f"Kendall tau, {label} fine-tuning: {result[f'kendall_tau_{key}']:+.3f} "
              f"(95% bootstrap CI [{low:+.2f}, {high:+.2f}] over "
              f"{result['n_archs']} architectures)")
    if result["n_archs"] < 10:
        print(f"note: {result['n_archs']} architectures; the paper ranks 10 "
              f"(supernet.rank_check_architectures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
