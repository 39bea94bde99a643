"""`python -m search.space SPACE [--json] [--encode SPEC.json]`: a search space's size, set
beside the paper's Table 2, or the decision sequence of one architecture.

    python -m search.space mnasfpn --json
    python -m search.space mnasfpn --encode configs/architectures/mnasfpn.json
    python -m search.space no_expand --space-overrides '{"intermediate_blocks": 3}'
    python -m search.space msnas --encode configs/architectures/msnas/msnas_r18_top1.json

The spaces live in `search.spaces` (the MnasFPN family's cells in `mnas_tf.spaces`, where
the latency table can use them too).
Exit code 2 with one line for an unknown space, bad overrides, or a spec outside the space.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from mnas_tf.arch import ArchitectureError, load_architecture
from mnas_tf.arch.msnas import load_msnas
from search.spaces import SPACE_NAMES, DecisionError, describe, get_space


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m search.space", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("space", help=f"one of {', '.join(SPACE_NAMES)}")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--encode", metavar="SPEC.json",
                        help="print this architecture's decision sequence in the space")
    parser.add_argument("--space-overrides", default="{}", metavar="JSON",
                        help='space settings, e.g. \'{"intermediate_blocks": 3}\'')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        space = get_space(args.space, json.loads(args.space_overrides), "--space-overrides")
        if args.encode:
            load = load_architecture if space.cell_space is not None else load_msnas
            spec = load(args.encode)
            print(json.dumps(space.encode(spec)))
            return 0
    except json.JSONDecodeError as e:
        print(f"error: --space-overrides is not valid JSON: {e}", file=sys.stderr)
        return 2
    except DecisionError as e:
        print(f"error: {args.encode} is not in space {args.space!r}: {e}", file=sys.stderr)
        return 2
    except (ValueError, ArchitectureError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    info = describe(space)
    if args.json:
        print(json.dumps(info))
        return 0
    if info["family"] == "msnas":
        print(f"space msnas: {info['num_blocks']} blocks of {info['channels']} channels, "
              f"{info['decisions']} decisions (block strides, then head feature strides)")
        print(f"cardinality {info['cardinality']:.6g} (10^{info['log10_cardinality']:.2f}) "
              f"(valid encoder, valid utilization) pairs")
        return 0
    paper = info["paper_cardinality"]
    print(f"space {info['space']} (family {info['family']}): {info['intermediate_blocks']} "
          f"intermediate + {info['output_blocks']} output blocks, {info['decisions']} "
          f"decisions")
    print(f"cardinality {info['cardinality']:.3g} (10^{info['log10_cardinality']:.2f})"
          + ("" if paper is None else
             f"; paper's Table 2: {paper:.2g}, log10(ours/paper) = "
             f"{info['log10_ratio_to_paper']:+.2f}"))
    print(f"with ordered input tuples instead of sets: {info['cardinality_ordered_inputs']:.3g}")
    print(f"formula: {info['formula']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
