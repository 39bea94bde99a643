"""Training throughput of MnasFPN at 320x320 on this machine: our loop vs Model Garden's.

Ours: the proxy engine's compiled multi-step loop (mnas_tf.proxy.make_train_loop) around
Model Garden's RetinaNetTask.train_step. Peer, in the same run: Model Garden's stock
`official.core.base_trainer.Trainer` with the stock `RetinaNetTask`, on the same detector
(same experiment, same data pipeline, same batch). Prints images/s and the ratio.

    python benchmarks/train_throughput.py [--steps 20] [--batch 16] [--experiment NAME]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def ours(params, steps):
    import tensorflow as tf
    from official.core import task_factory

    from mnas_tf.proxy import make_train_loop
    task = task_factory.get_task(params.task)
    model = task.build_model()
    optimizer = task.create_optimizer(params.trainer.optimizer_config, params.runtime)
    loop = make_train_loop(task, model, optimizer, task.build_metrics(training=True))
    iterator = iter(task.build_inputs(params.task.train_data))
    loop(iterator, tf.constant(2))  # trace + warm-up
    start = time.perf_counter()
    loop(iterator, tf.constant(steps))
    return time.perf_counter() - start


def model_garden(params, steps):
    import tensorflow as tf
    from official.core import base_trainer, task_factory
    from official.vision.tasks import retinanet as stock

    ours_task = task_factory.get_task(params.task)  # only to build the same detector
    model = ours_task.build_model()
    task = stock.RetinaNetTask(params.task)
    optimizer = task.create_optimizer(params.trainer.optimizer_config, params.runtime)
    trainer = base_trainer.Trainer(params, task, model, optimizer, train=True,
                                   evaluate=False)
    trainer.train(tf.constant(2))  # trace + warm-up
    start = time.perf_counter()
    trainer.train(tf.constant(steps))
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="mnasfpn_synthetic")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    from mnas_tf.data_paths import resolve_data_paths
    from mnas_tf.experiment import load_experiment
    params = resolve_data_paths(load_experiment(args.experiment, [
        {"task": {"train_data": {"global_batch_size": args.batch}}}]))
    size = params.task.model.input_size[:2]
    images = args.steps * args.batch
    t_ours = ours(params, args.steps)
    t_mg = model_garden(params, args.steps)
    print(f"input {size[0]}x{size[1]}, batch {args.batch}, {args.steps} steps")
    print(f"ours          {images / t_ours:6.2f} images/s")
    print(f"model garden  {images / t_mg:6.2f} images/s")
    print(f"ratio         {t_mg / t_ours:6.2f} x (goal >= 1.0)")


if __name__ == "__main__":
    main()
