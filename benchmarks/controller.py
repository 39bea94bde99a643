"""PPO controller on a toy reward with a known optimum, against random search; and the
controller's own overhead per child. Runs with the shipped defaults.

    python benchmarks/controller.py [--config C] [--budget 3000] [--seeds 0 1 2]
        [--png docs/controller_toy.png] [--learning-rate X --entropy X --batch N]

The PPO settings (learning rate, entropy bonus, epochs, ...) and the update batch
(`update_every`) come from the search config, by default the shipped
`configs/search/default.yaml`; flags override them and the header says so. The toy reward
(search/spaces/toy.py) scores an architecture by its per-decision closeness to a hidden target;
the optimum is 1.0. Both methods get the same number of samples. Printed: best-so-far
at several budgets, samples PPO needs to come within 2% of the optimum, whether PPO is
ahead of random at every budget, and the controller overhead per child (sampling + its
share of the PPO update, goal <= 5 ms). The PNG plots best-so-far against samples for
both methods and every seed.
"""

import argparse
import dataclasses
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from mnas_tf.spaces import canonical_dict, get_space  # noqa: E402
from search.config import load_config  # noqa: E402
from search.strategies.policy import MovingBaseline, Policy  # noqa: E402
from search.store import arch_hash  # noqa: E402
from search.spaces.toy import ToyObjective  # noqa: E402


def run_ppo(space, objective, budget, batch, config, seed):
    policy = Policy(space, config, seed=seed)
    rng = np.random.default_rng(seed)
    baseline = MovingBaseline(config.baseline_decay)
    scores, sample_s, update_s, sequences = [], 0.0, 0.0, []
    while len(scores) < budget:
        t = time.perf_counter()
        samples = [policy.sample(rng) for _ in range(batch)]
        sample_s += time.perf_counter() - t
        sequences.extend(s.decisions for s in samples)
        rewards = [objective.score_decisions(s.decisions) for s in samples]
        scores.extend(rewards)
        t = time.perf_counter()
        policy.update([s.decisions for s in samples], [s.step_log_probs for s in samples],
                      baseline.advantages(rewards))
        update_s += time.perf_counter() - t
    n = len(scores)
    return (np.maximum.accumulate(scores[:budget]), sample_s / n * 1e3, update_s / n * 1e3,
            duplicates(space, sequences[:budget]))


def duplicates(space, sequences) -> tuple[float, float]:
    """Fraction of samples whose detector was sampled before: hashing the whole cell, and
    hashing the canonical (pruned, sum-order-free) architecture the store keys trials by."""
    whole, canonical = set(), set()
    for decisions in sequences:
        it = iter(decisions)
        spec = space.run(lambda kind, name, valid: next(it))
        data = spec.to_dict()
        data.pop("name")
        whole.add(arch_hash(data))
        canonical.add(arch_hash(canonical_dict(spec)))
    return 1 - len(whole) / len(sequences), 1 - len(canonical) / len(sequences)


def run_random(space, objective, budget, seed):
    rng = np.random.default_rng(seed)
    scores = [objective.score_decisions(space.sample_decisions(rng)) for _ in range(budget)]
    return np.maximum.accumulate(scores)


def first_within(curve, level):
    hits = np.nonzero(curve >= level)[0]
    return int(hits[0]) + 1 if len(hits) else None


def plot(curves, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for seed, (ppo, rnd) in curves.items():
        x = np.arange(1, len(ppo) + 1)
        ax.plot(x, ppo, color="tab:blue", alpha=0.8, label="PPO" if seed == min(curves) else None)
        ax.plot(x, rnd, color="tab:gray", alpha=0.8,
                label="random" if seed == min(curves) else None)
    ax.axhline(0.98, color="tab:red", ls="--", lw=1, label="98% of optimum")
    ax.set_xlabel("samples")
    ax.set_ylabel("best toy score so far (optimum 1.0)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="search config (default: shipped)")
    parser.add_argument("--budget", type=int, default=3000)
    parser.add_argument("--space", default=None, help="default: the config's space")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=None,
                        help="children per PPO update (default: the config's ppo.update_every)")
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--entropy", type=float, default=None, help="entropy bonus")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--png", default=None, help="write the best-so-far curves here")
    args = parser.parse_args()
    search = load_config(args.config)
    changes = {k: v for k, v in (("learning_rate", args.learning_rate),
                                 ("entropy", args.entropy), ("epochs", args.epochs))
               if v is not None}
    config = dataclasses.replace(search.ppo, **changes)
    batch = args.batch or search.ppo.update_every
    name = args.space or search.space
    space = get_space(name, **(search.space_overrides if name == search.space else {}))
    changed = dict(changes, **({"batch": batch} if args.batch else {}))
    marks = [m for m in (100, 250, 500, 1000, 2000, 3000, 5000) if m <= args.budget]
    setting = (f"lr {config.learning_rate:g}, entropy {config.entropy:g}, epochs "
               f"{config.epochs}, batch {batch}")
    print(f"space {name}, up to {space.max_length} decisions, budget {args.budget}, PPO "
          f"{setting} ({'shipped defaults' if not changed else 'NOT the shipped defaults: '}"
          f"{'' if not changed else changed})")
    print(f"{'seed':>4} {'method':>7} " + " ".join(f"{'@' + str(m):>7}" for m in marks)
          + f" {'n to 98%':>9}")
    overheads, reach, ahead, curves, dups = [], [], [], {}, []
    for seed in args.seeds:
        objective = ToyObjective(space, seed)
        ppo, sample_ms, update_ms, dup = run_ppo(space, objective, args.budget, batch, config,
                                                 seed)
        dups.append(dup)
        rnd = run_random(space, objective, args.budget, seed)
        curves[seed] = (ppo, rnd)
        for method, curve in (("ppo", ppo), ("random", rnd)):
            hit = first_within(curve, 0.98 * objective.optimum)
            if method == "ppo":
                reach.append(hit)
            print(f"{seed:>4} {method:>7} " + " ".join(f"{curve[m - 1]:>7.3f}" for m in marks)
                  + f" {str(hit):>9}")
        ahead.append(all(ppo[m - 1] > rnd[m - 1] for m in marks))
        overheads.append((sample_ms, update_ms))
    sample_ms, update_ms = np.mean(overheads, axis=0)
    print(f"controller overhead per child: sample {sample_ms:.2f} ms + update share "
          f"{update_ms:.2f} ms = {sample_ms + update_ms:.2f} ms (goal <= 5 ms)")
    print(f"PPO within 2% of the optimum after: {reach} samples (goal <= 2000 each)")
    print(f"PPO ahead of random at every budget {marks}: {ahead}")
    print("duplicate detectors among PPO's samples, whole-cell hash -> canonical hash: "
          + ", ".join(f"seed {s}: {100 * a:.1f}% -> {100 * b:.1f}%"
                      for s, (a, b) in zip(args.seeds, dups)))
    if args.png:
        plot(curves, args.png, f"toy reward, space {name}: PPO ({setting}) vs random")
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
