"""MSNAS super-net step time vs a stand-alone child of the same path (goal <= 1.5x).

Super-net: `search.evaluators.supernet.msnas` — one compiled step serving every path (switch_case choices,
in-graph labelling of the path's anchors). Child: the same architecture built through
Model Garden (`msnas_synthetic`, MSNAS backbone, group-anchor parser labels in tf.data),
trained with the project's compiled loop. Same input size, batch, head and optimizer.
Rounds alternate so background load hits both alike; best round counts.

    python benchmarks/msnas_supernet.py [--config YAML] [--arch JSON] [--steps 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def child_runner(cfg, spec):
    """run(steps) -> seconds, for the stand-alone child trained via Model Garden's task."""
    import tensorflow as tf
    from official.core import task_factory

    from mnas_tf.data_paths import resolve_data_paths
    from mnas_tf.experiment import load_experiment
    from mnas_tf.proxy import make_train_loop
    from search.evaluators.supernet.training import proxy_config
    pc = proxy_config(cfg)
    size = pc.input_size
    params = resolve_data_paths(load_experiment(pc.experiment, [
        *pc.params_override,
        {"task": {"model": {"input_size": [size, size, 3],
                            "backbone": {"msnas": {"architecture": spec.to_json()}}},
                  "train_data": {"input_path": pc.train_data,
                                 "global_batch_size": pc.batch_size}}}]), progress=False)
    task = task_factory.get_task(params.task)
    model = task.build_model()
    optimizer = task.create_optimizer(params.trainer.optimizer_config, params.runtime)
    loop = make_train_loop(task, model, optimizer, task.build_metrics(training=True))
    iterator = iter(task.build_inputs(params.task.train_data))
    loop(iterator, tf.constant(2))

    def run(steps):
        start = time.perf_counter()
        float(loop(iterator, tf.constant(steps)))
        return time.perf_counter() - start
    return run


def supernet_runners(cfg, space, spec):
    import numpy as np

    from search.evaluators.supernet.training import build_trainer
    trainer = build_trainer(cfg, space)
    iterator = trainer.engine._train_iterator  # pylint: disable=protected-access
    rng = np.random.default_rng(0)
    trainer.step(spec, next(iterator))  # trace + warm-up

    def fixed(steps):
        start = time.perf_counter()
        for _ in range(steps):
            trainer.step(spec, next(iterator))
        return time.perf_counter() - start

    def sampled(steps):
        paths = [space.sample(rng) for _ in range(steps)]
        start = time.perf_counter()
        for path in paths:
            trainer.step(path, next(iterator))
        return time.perf_counter() - start
    return fixed, sampled, trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="msnas_default",
                        help="search config (default: msnas_default)")
    parser.add_argument("--arch", help="path JSON (default: a fixed random valid path)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import numpy as np

    from mnas_tf.arch.msnas import load_msnas
    from search.config import load_config
    from search.spaces import get_space
    cfg = load_config(args.config)
    space = get_space(cfg.space, cfg.space_overrides)
    spec = load_msnas(args.arch) if args.arch else space.sample(np.random.default_rng(123))
    fixed, sampled, trainer = supernet_runners(cfg, space, spec)
    runners = {"super-net, this path": fixed, "super-net, sampled paths": sampled,
               "stand-alone child": child_runner(cfg, spec)}
    best = {name: float("inf") for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            best[name] = min(best[name], run(args.steps))
    d = cfg.supernet
    print(f"path strides {list(spec.encoder.strides)} heads {list(spec.feature_strides)}, "
          f"{space.channels} channels, input {d.input_size}, batch "
          f"{d.batch_size}, best of {args.rounds} x {args.steps} steps")
    for name, t in best.items():
        print(f"{name:26s} {1000 * t / args.steps:8.1f} ms/step")
    child = best["stand-alone child"]
    print(f"ratio super-net/child (same path)     {best['super-net, this path'] / child:5.2f} x"
          f" (goal <= 1.5)")
    print(f"ratio super-net/child (sampled paths) {best['super-net, sampled paths'] / child:5.2f}"
          f" x")
    print(f"super-net traces: {trainer.trace_count()} for {2 + 2 * args.rounds * args.steps} "
          f"steps over {args.rounds * args.steps + 1} paths")


if __name__ == "__main__":
    main()
