"""Duplicate rate among random samples of a space: how many sampled decision sequences
build a detector already sampled, with the hash over the whole (unpruned) cell as before,
and with the canonical hash that ignores pruned blocks and the order of sum inputs.

    python benchmarks/space_duplicates.py [--space mnasfpn] [--samples 1000] [--seeds 0 1 2]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from mnas_tf.spaces import canonical_dict, get_space  # noqa: E402
from search.store import arch_hash  # noqa: E402


def duplicate_rates(space, samples: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    whole, pruned, kept = set(), set(), []
    for _ in range(samples):
        it = iter(space.sample_decisions(rng))
        spec = space.run(lambda kind, name, valid: next(it))
        data = spec.to_dict()
        data.pop("name")
        whole.add(arch_hash(data))
        pruned.add(arch_hash(canonical_dict(spec)))
        kept.append(len(spec.used_blocks()) - len(space.levels))
    return {"before": 1 - len(whole) / samples, "after": 1 - len(pruned) / samples,
            "intermediate_kept": float(np.mean(kept))}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="mnasfpn")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    space = get_space(args.space)
    for seed in args.seeds:
        r = duplicate_rates(space, args.samples, seed)
        print(f"space {args.space}, {args.samples} uniform decision samples, seed {seed}: "
              f"duplicates {100 * r['before']:.1f}% with the whole-cell hash, "
              f"{100 * r['after']:.1f}% with the pruned canonical hash; "
              f"{r['intermediate_kept']:.2f} of {space.intermediate_blocks} intermediate "
              f"blocks survive pruning on average")


if __name__ == "__main__":
    main()
