"""Training throughput of MnasFPN at 320x320 on this machine: our loop vs Model Garden's.

Ours: the proxy engine's compiled multi-step loop (mnas_tf.proxy.make_train_loop) around
Model Garden's RetinaNetTask.train_step. Peer, in the same run: Model Garden's stock
`official.core.base_trainer.Trainer` with the stock `RetinaNetTask`, on the same detector
(same experiment, same data pipeline, same batch). Prints images/s and the ratio.

    python benchmarks/train_throughput.py [--steps 10] [--rounds 2] [--batch 16]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def ours(params):
    """Returns run(steps) -> seconds for our compiled loop (already traced and warm)."""
    import tensorflow as tf
    from official.core import task_factory

    from mnas_tf.proxy import make_train_loop
    task = task_factory.get_task(params.task)
    model = task.build_model()
    optimizer = task.create_optimizer(params.trainer.optimizer_config, params.runtime)
    loop = make_train_loop(task, model, optimizer, task.build_metrics(training=True))
    iterator = iter(task.build_inputs(params.task.train_data))
    loop(iterator, tf.constant(2))  # trace + warm-up

    def run(steps):
        start = time.perf_counter()
        float(loop(iterator, tf.constant(steps)))
        return time.perf_counter() - start
    return run


def model_garden(params):
    """Same for Model Garden's stock Trainer + RetinaNetTask on the same detector."""
    import tensorflow as tf
    from official.core import base_trainer, task_factory
    from official.vision.tasks import retinanet as stock

    model = task_factory.get_task(params.task).build_model()  # the same detector
    task = stock.RetinaNetTask(params.task)
    optimizer = task.create_optimizer(params.trainer.optimizer_config, params.runtime)
    trainer = base_trainer.Trainer(params, task, model, optimizer, train=True,
                                   evaluate=False)
    trainer.train(tf.constant(2))  # trace + warm-up

    def run(steps):
        start = time.perf_counter()
        trainer.train(tf.constant(steps))
        float(trainer.train_loss.result())
        return time.perf_counter() - start
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="mnasfpn_synthetic")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from mnas_tf.data_paths import resolve_data_paths
    from mnas_tf.experiment import load_experiment
    params = resolve_data_paths(load_experiment(args.experiment, [
        {"task": {"train_data": {"global_batch_size": args.batch}}}]))
    size = params.task.model.input_size[:2]
    images = args.steps * args.batch
    runners = {"ours": ours(params), "model garden": model_garden(params)}
    best = {name: float("inf") for name in runners}
    for _ in range(args.rounds):  # alternate, so background load hits both alike
        for name, run in runners.items():
            best[name] = min(best[name], run(args.steps))
    t_ours, t_mg = best["ours"], best["model garden"]
    print(f"input {size[0]}x{size[1]}, batch {args.batch}, best of {args.rounds} x "
          f"{args.steps} steps each, alternating")
    print(f"ours          {images / t_ours:6.2f} images/s")
    print(f"model garden  {images / t_mg:6.2f} images/s")
    print(f"ratio         {t_mg / t_ours:6.2f} x (goal >= 1.0)")


if __name__ == "__main__":
    main()
