"""Command line: ``python -m mnas_tf.data {prepare,split,synth}``.

Data problems are user errors, not bugs: they print one ``error: ...`` line
on stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from mnas_tf import console  # first: quiets TensorFlow before it loads
from mnas_tf.data.coco import DataError

EXIT_USAGE = 2


class _UsageError(Exception):
    """Raised instead of argparse's multi-line usage dump."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D401 - argparse hook
        raise _UsageError(f"{self.prog}: {message}")


def _val_size(text: str) -> int | float:
    """'7000' is a count, '0.2' a fraction."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count or a fraction: {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m mnas_tf.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = commands.add_parser("prepare", help="COCO JSON + images -> TFRecord shards")
    p.add_argument("--annotations", required=True, help="COCO instances JSON")
    p.add_argument("--images", required=True, help="folder the file_names are relative to")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--name", default="train", help="split name, prefix of the outputs")
    p.add_argument("--shards", type=int, default=None, help="default: images/1000, 1..256")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip bad records (counted per reason) instead of failing")
    p.add_argument("--processes", type=int, default=0, help="encoder worker processes")

    s = commands.add_parser("split", help="hold out a search-val set, by image id")
    s.add_argument("--annotations", required=True, help="COCO JSON to split")
    s.add_argument("--out", required=True, help="writes search_train.json, search_val.json")
    s.add_argument("--val-size", required=True, type=_val_size,
                   help="held-out images: a count (7000) or a fraction (0.2)")
    s.add_argument("--seed", type=int, default=0)

    g = commands.add_parser("synth", help="build (or find) the cached synthetic dataset")
    g.add_argument("--out", default=None, help="cache root (default: $MNAS_TF_DATA or "
                   "~/.cache/mnas_tf/datasets)")
    g.add_argument("--num-train", type=int, default=512)
    g.add_argument("--num-val", type=int, default=128)
    g.add_argument("--image-size", type=int, default=320)
    g.add_argument("--seed", type=int, default=0)
    return parser


def _run(args: argparse.Namespace) -> dict:
    if args.command == "prepare":
        from mnas_tf.data.prepare import prepare

        result = prepare(args.annotations, args.images, args.out, name=args.name,
                         num_shards=args.shards, skip_bad=args.skip_bad,
                         processes=args.processes)
        return dataclasses.asdict(result)
    if args.command == "split":
        from mnas_tf.data.split import split_file

        train, val = split_file(args.annotations, args.out, args.val_size, seed=args.seed)
        return {"search_train": train, "search_val": val}
    from mnas_tf.data.synthetic import SyntheticConfig, default_dataset

    config = SyntheticConfig(num_train=args.num_train, num_val=args.num_val,
                             image_size=args.image_size, seed=args.seed)
    return dataclasses.asdict(default_dataset(config, root=args.out))


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    try:
        result = _run(_parser().parse_args(console.cli(argv)))
    except (_UsageError, DataError, ValueError, OSError) as e:
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
