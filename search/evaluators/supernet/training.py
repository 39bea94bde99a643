"""Training and checking the MSNAS super-net, from the search config.

`build_trainer` sets up the shared data (a `ProxyEngine`: deferred-label training inputs,
parsed validation batches, COCO evaluator) and the super-net. `train_supernet` trains it
from scratch, one uniform valid path per step, checkpointing under OUT/supernet, and
resumes from the last checkpoint. `rank_check` measures how well one-shot scores rank
paths against stand-alone training.
"""

from __future__ import annotations

import os
import time

import numpy as np

from search.fidelity import rank_agreement

CHECKPOINT_DIR = "supernet"
FINETUNE_DIR = "supernet_finetune"  # one .npz per fine-tune batch


def proxy_config(config):
    """The data side of the super-net as the proxy engine's config. `head_convs` and
    `head_filters` size the dense head: RetinaNet's (retinanet) or the RPN's (fasterrcnn,
    whose box head stays the experiment's)."""
    from mnas_tf.proxy import ProxyConfig
    s = config.supernet
    head = "rpn_head" if s.detector == "fasterrcnn" else "head"
    # float32 images: Model Garden's R-CNN data default to bfloat16, which the fine-tune
    # batches (.npz) cannot hold and which changes scores (see `write_batch`)
    dtype = ({"task": {"train_data": {"dtype": "float32"},
                       "validation_data": {"dtype": "float32"}}},) if s.detector == "fasterrcnn" else ()
    return ProxyConfig(
        experiment=s.experiment, train_data=s.train_data, val_data=s.val_data,
        val_annotations=s.val_annotations or s.val_data, batch_size=s.batch_size, input_size=s.input_size,
        eval_batch_size=s.eval_batch_size, max_eval_batches=s.max_eval_batches,
        params_override=({"task": {"model": {head: {"num_convs": s.head_convs,
                                                    "num_filters": s.head_filters}}}},
                         *([{"task": {"model": {"num_classes": s.num_classes}}}]
                           if s.num_classes else []), *dtype))


def check_detector(supernet_config) -> None:
    """supernet.experiment must be of supernet.detector's kind (two-stage: an RPN)."""
    from mnas_tf.experiment import load_experiment
    from search.config import SearchConfigError
    s = supernet_config
    two_stage = hasattr(load_experiment(s.experiment).task.model, "rpn_head")
    if two_stage != (s.detector == "fasterrcnn"):
        kind = "a two-stage (Faster R-CNN)" if two_stage else "a one-stage (RetinaNet)"
        raise SearchConfigError(
            f"supernet.experiment {s.experiment} is {kind} experiment but supernet.detector "
            f"is {s.detector}; set supernet.experiment null for the detector's own")


def build_trainer(config, space):
    from mnas_tf.proxy import ProxyEngine
    from search.evaluators.supernet.msnas import SuperNetTrainer, deferred_train_inputs
    s = config.supernet
    check_detector(s)
    parts = None
    if s.detector == "fasterrcnn":
        from search.evaluators.supernet.fasterrcnn import deferred_rcnn_inputs, trainer_parts
        inputs, parts = deferred_rcnn_inputs, trainer_parts
    else:
        inputs = deferred_train_inputs
    engine = ProxyEngine(proxy_config(config), build_train_inputs=inputs)
    return SuperNetTrainer(engine, space.num_blocks, space.channels, s.learning_rate,
                           s.finetune_learning_rate, seed=config.seed,
                           optimizer=s.optimizer, steps=s.steps, detector=s.detector,
                           parts=parts)


def _manager(trainer, out_dir: str):
    import tensorflow as tf
    step = tf.Variable(0, dtype=tf.int64, name="step")
    ckpt = trainer.checkpoint(step)
    manager = tf.train.CheckpointManager(ckpt, os.path.join(out_dir, CHECKPOINT_DIR),
                                         max_to_keep=2)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    return step, manager


def trained_steps(out_dir: str) -> int:
    """The step of the super-net's latest checkpoint (-1: none), from the checkpoint
    index file alone (no TensorFlow)."""
    import re
    path = os.path.join(out_dir, CHECKPOINT_DIR, "checkpoint")
    if not os.path.exists(path):
        return -1
    with open(path) as f:
        match = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', f.read(), re.M)
    return int(match.group(1)) if match else -1


def restore_trained(trainer, out_dir: str) -> int:
    """Loads the super-net a search trained (the workers' copy); returns its step."""
    step, manager = _manager(trainer, out_dir)
    if manager.latest_checkpoint is None:
        raise FileNotFoundError(f"no super-net checkpoint under {out_dir}/{CHECKPOINT_DIR}")
    return int(step)


def train_supernet(trainer, config, space, out_dir: str, progress: bool = True) -> dict:
    """Trains (or finishes training) the super-net; returns timing figures."""
    from tqdm import tqdm
    steps, every = config.supernet.steps, config.supernet.checkpoint_every
    step, manager = _manager(trainer, out_dir)
    iterator = trainer.engine._train_iterator  # pylint: disable=protected-access
    times, losses = [], []
    bar = tqdm(total=steps, initial=int(step), desc="super-net", disable=not progress,
               unit="step", dynamic_ncols=True)
    while int(step) < steps:
        rng = np.random.default_rng([config.seed, int(step)])
        batch = next(iterator)
        t0 = time.perf_counter()
        losses.append(trainer.step(space.sample(rng), batch))
        times.append(time.perf_counter() - t0)
        step.assign_add(1)
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if int(step) % every == 0 or int(step) == steps:
            manager.save(checkpoint_number=int(step))
    bar.close()
    if manager.latest_checkpoint is None:  # steps: 0, the untrained super-net
        manager.save(checkpoint_number=0)
    return {"steps": steps, "steps_run": len(times),
            "median_step_s": float(np.median(times[1:])) if len(times) > 1 else None,
            "traces": trainer.trace_count()}


def finetune_paths(config, out_dir: str) -> list:
    return [os.path.join(out_dir, FINETUNE_DIR, f"batch_{i:05d}.npz")
            for i in range(config.supernet.finetune_batches)]


def finetune_batches_ready(config, out_dir: str) -> bool:
    return all(os.path.exists(p) for p in finetune_paths(config, out_dir))


def _flatten(tree, prefix: str = "") -> dict:
    """{"images": ..., "labels/box_targets/gt_boxes": ...}: a batch as .npz keys."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items()
                for k, v in _flatten(sub, f"{prefix}/{key}" if prefix else key).items()}
    return {prefix: np.asarray(tree)}


def _unflatten(arrays) -> dict:
    tree: dict = {}
    for key in arrays.files:
        *parents, leaf = key.split("/")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = arrays[key]
    return tree


def write_batch(path: str, batch) -> None:
    """One batch (images, labels) as an .npz, written atomically (a kill leaves none).

    Images stay float32: float16 changed 3 of 8 candidates' AP50 (by up to 0.0066) on the
    embedded default's super-net (measured after 300 steps)."""
    images, labels = batch
    tmp = path + ".tmp.npz"
    np.savez(tmp, **_flatten({"images": images, "labels": labels}))
    os.replace(tmp, path)


def read_batch(path: str):
    """The batch `write_batch` wrote, as the tensors the step takes."""
    import tensorflow as tf
    with np.load(path) as arrays:
        tree = _unflatten(arrays)
    return tf.nest.map_structure(tf.constant, (tree["images"], tree["labels"]))


class DiskBatches:
    """The fine-tune batches, read from disk when a step needs one; only the last one
    read stays in memory (at the paper's scale a batch is ~266 MB, the set ~27 GB)."""

    def __init__(self, paths: list):
        self.paths = paths
        self._last = (None, None)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        if self._last[0] != i:
            self._last = (None, None)  # frees the previous batch before reading the next
            self._last = (i, read_batch(self.paths[i]))
        return self._last[1]


def load_finetune_batches(trainer, config, out_dir: str) -> None:
    """The fixed fine-tune batches, drawn once into OUT/supernet_finetune so every worker
    and a resumed search reuse them; a search killed while writing them writes only the
    missing ones (drawn in order, so batch i is still the i-th drawn)."""
    paths = finetune_paths(config, out_dir)
    missing = [i for i, p in enumerate(paths) if not os.path.exists(p)]
    if missing:
        os.makedirs(os.path.dirname(paths[0]), exist_ok=True)
        iterator = trainer.engine._train_iterator  # pylint: disable=protected-access
        for i in range(max(missing) + 1):
            batch = next(iterator)
            if i in missing:
                write_batch(paths[i], batch)
    trainer.finetune_batches = DiskBatches(paths)


def finetune_storage(config) -> dict:
    """Bytes of the fine-tune batches on disk and in memory (`DiskBatches` holds one),
    from the config alone: float32 images, plus the deferred labels of the parser's
    `max_num_instances` boxes (int32 classes, float32 boxes and two weights) and the
    image info (two-stage: boxes and classes). Reading a batch briefly holds it twice
    (the arrays, then the tensors)."""
    from mnas_tf.experiment import load_experiment
    s = config.supernet
    max_instances = load_experiment(s.experiment).task.train_data.parser.max_num_instances
    image = s.input_size * s.input_size * 3 * 4
    if s.detector == "fasterrcnn":  # gt_boxes, gt_classes (Model Garden's R-CNN parser)
        labels = max_instances * (4 * 4 + 4) + 4 * 2 * 4
    else:
        labels = max_instances * (4 + 4 * 4 + 4 + 4) + 4 * 2 * 4
    batch = s.batch_size * (image + labels)
    return {"batches": s.finetune_batches, "batch_size": s.batch_size,
            "input_size": s.input_size, "bytes_per_batch": batch,
            "disk_bytes": batch * s.finetune_batches, "memory_bytes": batch,
            "peak_memory_bytes": 2 * batch}


def rank_check(trainer, config, space, constraint, progress: bool = True) -> dict:
    """Kendall tau between one-shot scores (with/without fine-tune) and stand-alone ones.

    Stand-alone = the same layers trained from their initial weights on ONE path only
    (exactly the child network: untaken branches neither run nor move), for
    `supernet.rank_check_train_steps` steps, same data and optimizer, then evaluated.
    """
    from tqdm import tqdm
    s = config.supernet
    rng = np.random.default_rng([config.seed, 7])
    specs, seen = [], set()
    while len(specs) < s.rank_check_architectures:
        spec = space.sample(rng)
        if constraint(spec) and space.arch_hash(spec) not in seen:
            seen.add(space.arch_hash(spec))
            specs.append(spec)
    rows = []
    trained = trainer.snapshot()
    for spec in tqdm(specs, desc="one-shot", disable=not progress):
        plain, _ = trainer.score(spec, 0)
        tuned, _ = trainer.score(spec, s.finetune_steps)
        rows.append({"arch": space.key(spec), "madds": constraint.cost(spec),
                     "one_shot": plain[s.metric], "one_shot_finetuned": tuned[s.metric]})
    fresh = trainer.initial_state
    iterator = trainer.engine._train_iterator  # pylint: disable=protected-access
    t0 = time.perf_counter()
    for row, spec in zip(rows, specs):
        trainer.restore(fresh)
        for _ in tqdm(range(s.rank_check_train_steps), desc="stand-alone",
                      disable=not progress, leave=False):
            trainer.step(spec, next(iterator))
        row["stand_alone"] = trainer.evaluate(spec)[s.metric]
    trainer.restore(trained)
    sa = [r["stand_alone"] for r in rows]
    with_ft = rank_agreement([r["one_shot_finetuned"] for r in rows], sa, seed=config.seed)
    without_ft = rank_agreement([r["one_shot"] for r in rows], sa, seed=config.seed)
    return {"score": s.metric, "architectures": rows, "n_archs": len(rows),
            "finetune_steps": s.finetune_steps, "stand_alone_steps": s.rank_check_train_steps,
            "kendall_tau_finetuned": with_ft["kendall_tau"],
            "kendall_tau_finetuned_ci": with_ft["kendall_tau_ci"],
            "kendall_tau_no_finetune": without_ft["kendall_tau"],
            "kendall_tau_no_finetune_ci": without_ft["kendall_tau_ci"],
            "finetuned": with_ft, "no_finetune": without_ft,
            "stand_alone_s": time.perf_counter() - t0}
