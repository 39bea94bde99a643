"""The one command line of every search entry point (`search.controller`,
`search.evolution`): config, `--set`, output folder, resume, executor, errors.

Each entry point only names its default config; a config may choose any space x strategy x
evaluator. Errors are one line and exit code 2; Ctrl-C keeps everything finished so far.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

from mnas_tf import console  # noqa: F401  (first: quiets TensorFlow before it loads)

from search import store as trial_store  # noqa: E402


def parser(prog: str, description: str, default_config: Optional[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=default_config,
                   help="YAML over the embedded default (a path or the name of one in "
                        f"configs/search/; default: {default_config or 'default'})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (dotted, repeatable), e.g. --set "
                        "strategy=random --set budget=20 --set ppo.learning_rate=0.001")
    p.add_argument("--out", help="output directory (default runs/search_SPACE_STRATEGY_seedS)")
    p.add_argument("--resume", action="store_true",
                   help="continue the search in --out after a stop or a kill")
    p.add_argument("--executor", choices=("local", "ray"), default="local")
    p.add_argument("--address", help="Ray cluster address HOST:PORT (default: start a local one)")
    p.add_argument("--budget", type=int, help="number of children (same as --set budget=N)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("your own data (COCO JSON + image folder; same as --set data...)")
    for part in ("train", "val"):
        g.add_argument(f"--{part}-annotations", metavar="FILE",
                       help=f"same as --set data.{part}.annotations=FILE")
        g.add_argument(f"--{part}-images", metavar="DIR",
                       help=f"same as --set data.{part}.images=DIR")
    console.add_flag(p)
    return p


def errors():
    """The exceptions a search CLI turns into one line and exit code 2."""
    from latency.errors import LatencyError
    from mnas_tf.arch import ArchitectureError
    from mnas_tf.config_files import ConfigError
    from search.driver import SearchError
    from search.executors import ExecutorError
    from search.strategies import StrategyError
    return (ConfigError, SearchError, LatencyError, ArchitectureError, ExecutorError,
            StrategyError, trial_store.StoreError, trial_store.ConfigMismatch)


def load(args, extra_sets: Sequence[str] = ()):
    from search.config import load_config
    sets = list(args.set) + list(extra_sets)
    if args.budget is not None:
        sets.append(f"budget={args.budget}")
    sets += data_sets(args)
    from search.data import resolve_data
    return resolve_data(load_config(args.config, sets=sets), progress=not args.quiet)


def data_sets(args) -> list:
    """The --train-/--val- data flags as `--set data....` items."""
    out = []
    for part in ("train", "val"):
        for key in ("annotations", "images"):
            value = getattr(args, f"{part}_{key}", None)
            if value is not None:
                out.append(f"data.{part}.{key}={json.dumps(value)}")
    return out


def run(args, extra_sets: Sequence[str] = ()) -> int:
    """Loads the config and runs the search; prints the best child and the result files."""
    from search.config import default_out_dir
    from search.driver import Search
    new_db = None
    try:
        config = load(args, extra_sets)
        out = args.out or default_out_dir(config)
        if not args.resume and not os.path.exists(os.path.join(out, trial_store.DB_NAME)):
            new_db = os.path.join(out, trial_store.DB_NAME)
        search = Search(config, out, args.resume, args.executor, args.address,
                        progress=not args.quiet)
        summary = search.run()
    except errors() as e:
        if new_db:  # a start that failed before any child must not block the rerun
            trial_store.discard_unused(new_db)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: everything finished so far is saved; continue with --resume",
              file=sys.stderr)
        return 130
    best = summary["best"]
    print(json.dumps(best and {k: v for k, v in best.items() if k != "arch"}))
    from search.references import describe
    for row in summary.get("references", []):  # where the published cell landed
        print(describe(row, summary["metric"]))
    written = [name for name in (trial_store.DB_NAME, "frontier.json", "frontier.png",
                                 "progress.png", "top_k.json", "summary.json", "tensorboard/",
                                 "logs/")
               if os.path.exists(os.path.join(summary["out"], name.rstrip("/")))]
    print(f"results: {summary['out']} ({', '.join(written)})")
    return 0
