"""`python -m search.space SPACE [--json] [--encode SPEC.json]`: a search space's size, set
beside the paper's Table 2, or the decision sequence of one architecture.

    python -m search.space mnasfpn --json
    python -m search.space mnasfpn --encode configs/architectures/mnasfpn.json
    python -m search.space no_expand --space-overrides '{"intermediate_blocks": 3}'

The spaces themselves live in `mnas_tf.spaces`, where the latency table can use them too.
Exit code 2 with one line for an unknown space, bad overrides, or a spec outside the space.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Optional, Sequence

from mnas_tf.arch import ArchitectureError, load_architecture
from mnas_tf.spaces import PAPER_CARDINALITY, SPACES, DecisionError
from mnas_tf.spaces.settings import space_from_settings


def describe(space) -> dict:
    """The space's size and shape as JSON data (the CLI's --json object)."""
    cardinality = space.cardinality()
    ordered = space.cardinality(ordered_inputs=True)
    shortest = []
    space.run(lambda kind, name, valid: shortest.append(valid[0]) or valid[0])
    paper = PAPER_CARDINALITY.get(space.name)
    return {
        "space": space.name, "family": space.family,
        "cardinality": float(cardinality), "log10_cardinality": math.log10(cardinality),
        "paper_cardinality": paper,
        "log10_ratio_to_paper": None if paper is None else math.log10(cardinality / paper),
        "cardinality_ordered_inputs": float(ordered),
        "log10_ratio_to_paper_ordered_inputs":
            None if paper is None else math.log10(ordered / paper),
        "decisions": space.max_length if "num_inputs" in space.kinds else len(shortest),
        "decisions_min": len(shortest),
        "intermediate_blocks": space.intermediate_blocks,
        "output_blocks": len(space.levels), "levels": list(space.levels),
        "choices": {kind: list(values) for kind, values in space.kinds.items()
                    if kind != "input"},
        "max_inputs": space.max_inputs, "formula": space.cardinality_formula(),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m search.space", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("space", help=f"one of {', '.join(SPACES)}")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--encode", metavar="SPEC.json",
                        help="print this architecture's decision sequence in the space")
    parser.add_argument("--space-overrides", default="{}", metavar="JSON",
                        help='space settings, e.g. \'{"intermediate_blocks": 3}\'')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        space = space_from_settings(args.space, json.loads(args.space_overrides),
                                    "--space-overrides")
        if args.encode:
            spec = load_architecture(args.encode)
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
