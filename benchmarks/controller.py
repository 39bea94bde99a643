"""PPO controller on a toy reward with a known optimum, against random search; and the
controller's own overhead per child.

    python benchmarks/controller.py [--budget 3000] [--space mnasfpn] [--seeds 0 1 2]

The toy reward (search/toy.py) scores an architecture by its per-decision closeness to a
hidden target; the optimum is 1.0. Both methods get the same number of samples; printed:
best-so-far curves, samples PPO needs to come within 2% of the optimum, and the controller
overhead per child (sampling + its share of the PPO update), which must stay under 5 ms.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from search.policy import MovingBaseline, PPOConfig, Policy  # noqa: E402
from search.space import get_space  # noqa: E402
from search.toy import ToyObjective  # noqa: E402


def run_ppo(space, objective, budget, batch, config, seed):
    policy = Policy(space, config, seed=seed)
    rng = np.random.default_rng(seed)
    baseline = MovingBaseline(config.baseline_decay)
    scores, sample_s, update_s = [], 0.0, 0.0
    while len(scores) < budget:
        t = time.perf_counter()
        samples = [policy.sample(rng) for _ in range(batch)]
        sample_s += time.perf_counter() - t
        rewards = [objective.score_decisions(s.decisions) for s in samples]
        scores.extend(rewards)
        t = time.perf_counter()
        policy.update([s.decisions for s in samples], [s.log_prob for s in samples],
                      baseline.advantages(rewards))
        update_s += time.perf_counter() - t
    n = len(scores)
    return np.maximum.accumulate(scores[:budget]), sample_s / n * 1e3, update_s / n * 1e3


def run_random(space, objective, budget, seed):
    rng = np.random.default_rng(seed)
    scores = [objective.score_decisions(space.sample_decisions(rng)) for _ in range(budget)]
    return np.maximum.accumulate(scores)


def first_within(curve, level):
    hits = np.nonzero(curve >= level)[0]
    return int(hits[0]) + 1 if len(hits) else None


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=3000)
    parser.add_argument("--space", default="mnasfpn")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=16, help="children per PPO update")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--entropy", type=float, default=0.03, help="entropy bonus")
    args = parser.parse_args()
    space = get_space(args.space)
    config = PPOConfig(learning_rate=args.learning_rate, entropy=args.entropy)
    marks = [m for m in (100, 250, 500, 1000, 2000, 3000, 5000) if m <= args.budget]
    print(f"space {args.space}, {space.max_length} decisions, budget {args.budget}, "
          f"PPO batch {args.batch}, lr {args.learning_rate}, entropy {args.entropy}")
    print(f"{'seed':>4} {'method':>7} " + " ".join(f"{'@' + str(m):>7}" for m in marks)
          + f" {'n to 98%':>9}")
    overheads, reach = [], []
    for seed in args.seeds:
        objective = ToyObjective(space, seed)
        ppo, sample_ms, update_ms = run_ppo(space, objective, args.budget, args.batch,
                                            config, seed)
        rnd = run_random(space, objective, args.budget, seed)
        for name, curve in (("ppo", ppo), ("random", rnd)):
            hit = first_within(curve, 0.98 * objective.optimum)
            if name == "ppo":
                reach.append(hit)
            print(f"{seed:>4} {name:>7} " + " ".join(f"{curve[m - 1]:>7.3f}" for m in marks)
                  + f" {str(hit):>9}")
        overheads.append((sample_ms, update_ms))
    sample_ms, update_ms = np.mean(overheads, axis=0)
    print(f"controller overhead per child: sample {sample_ms:.2f} ms + update share "
          f"{update_ms:.2f} ms = {sample_ms + update_ms:.2f} ms (goal <= 5 ms)")
    print(f"PPO within 2% of the optimum after: {reach} samples")


if __name__ == "__main__":
    main()
