"""The pieces an MSNAS search is made of, built from its config.

`build_trainer` sets up the shared data (a `ProxyEngine`: deferred-label training inputs,
parsed validation batches, COCO evaluator) and the super-net. `train_supernet` trains
it from scratch, one uniform valid path per step, checkpointing under the output dir and
recording progress in the store, and resumes from the last checkpoint. `Constraint` is
the paper's Select rule. `rank_check` measures how well one-shot scores rank paths.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import time
from typing import Callable, Optional

import numpy as np

from mnas_tf.arch.msnas import MSNASSpec
from search.spaces.msnas import MSNASSpace, kendall_tau

SUPERNET_STATE = "supernet"


def space_of(cfg: dict) -> MSNASSpace:
    return MSNASSpace(cfg["space"]["num_blocks"], cfg["space"]["channels"])


def proxy_config(cfg: dict):
    from mnas_tf.proxy import ProxyConfig
    d, h = cfg["data"], cfg["head"]
    return ProxyConfig(
        experiment=cfg["experiment"], train_data=d["train_data"], val_data=d["val_data"],
        val_annotations=d["val_data"], batch_size=d["batch_size"],
        input_size=d["input_size"], eval_batch_size=d["eval_batch_size"],
        max_eval_batches=d["max_eval_batches"],
        params_override=({"task": {"model": {"head": {"num_convs": h["num_convs"],
                                                      "num_filters": h["num_filters"]}}}},))


def build_trainer(cfg: dict):
    from mnas_tf.proxy import ProxyEngine
    from search.supernet import SuperNetTrainer, deferred_train_inputs
    engine = ProxyEngine(proxy_config(cfg), build_train_inputs=deferred_train_inputs)
    return SuperNetTrainer(engine, cfg["space"]["num_blocks"], cfg["space"]["channels"],
                           cfg["supernet"]["learning_rate"], cfg["finetune"]["learning_rate"],
                           seed=cfg["seed"])


# ------------------------------------------------------------------------ constraint
@dataclasses.dataclass(frozen=True)
class Constraint:
    """Select(children, C): MAdds of encoder + head within `tolerance` of `target`."""

    target: Optional[float]
    tolerance: float
    madds: Callable[[MSNASSpec], int]

    def __call__(self, spec: MSNASSpec) -> bool:
        if self.target is None:
            return True
        return abs(self.madds(spec) - self.target) <= self.tolerance * self.target


def madds_fn(cfg: dict, num_classes: int, num_anchors: int) -> Callable[[MSNASSpec], int]:
    """Analytic MAdds of encoder + RetinaNet head (checked against cost.count_madds)."""
    from mnas_tf.modeling.msnas import encoder_madds, head_madds
    size = (cfg["data"]["input_size"],) * 2
    h = cfg["head"]

    def madds(spec: MSNASSpec) -> int:
        return encoder_madds(spec, size) + head_madds(
            spec.feature_strides, size, spec.encoder.channels, h["num_convs"],
            h["num_filters"], num_classes, num_anchors)
    return madds


def resolve_constraint(cfg: dict, num_classes: int = 7, num_anchors: int = 9) -> Constraint:
    """The constraint; a missing MAdds target becomes the median of 1000 random paths."""
    fn = madds_fn(cfg, num_classes, num_anchors)
    c = cfg["constraint"]
    if c["type"] == "none":
        return Constraint(None, 0.0, fn)
    target = c["target"]
    if target is None:
        rng = np.random.default_rng(cfg["seed"])
        space = space_of(cfg)
        target = float(np.median([fn(space.sample(rng)) for _ in range(1000)]))
    return Constraint(float(target), float(c["tolerance"]), fn)


def sample_selected(space: MSNASSpace, constraint: Constraint, rng: np.random.Generator,
                    n: int, exclude: set = frozenset(), max_tries: int = 100_000) -> list:
    """n distinct uniform valid paths that pass the constraint (not in `exclude`)."""
    from search.store import arch_hash
    out, seen = [], set(exclude)
    for _ in range(max_tries):
        if len(out) == n:
            break
        spec = space.sample(rng)
        h = arch_hash(spec.search_key())
        if h not in seen and constraint(spec):
            seen.add(h)
            out.append(spec)
    if len(out) < n:
        raise RuntimeError(f"only {len(out)} of {n} random paths met the constraint in "
                           f"{max_tries} draws; widen constraint.tolerance")
    return out


# ------------------------------------------------------------------------ super-net
def train_supernet(trainer, cfg: dict, out_dir: str, store=None, progress: bool = True) -> dict:
    """Trains (or finishes training) the super-net; returns timing figures."""
    import tensorflow as tf
    from tqdm import tqdm
    steps = cfg["supernet"]["steps"]
    step = tf.Variable(0, dtype=tf.int64, name="step")
    ckpt = trainer.checkpoint(step)
    manager = tf.train.CheckpointManager(ckpt, os.path.join(out_dir, "supernet"), max_to_keep=2)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    space = space_of(cfg)
    iterator = trainer.engine._train_iterator  # pylint: disable=protected-access
    times, losses = [], []
    bar = tqdm(total=steps, initial=int(step), desc="super-net", disable=not progress,
               unit="step", dynamic_ncols=True)
    while int(step) < steps:
        rng = np.random.default_rng([cfg["seed"], int(step)])
        batch = next(iterator)
        t0 = time.perf_counter()
        losses.append(trainer.step(space.sample(rng), batch))
        times.append(time.perf_counter() - t0)
        step.assign_add(1)
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if int(step) % cfg["supernet"]["checkpoint_every"] == 0 or int(step) == steps:
            path = manager.save(checkpoint_number=int(step))
            if store is not None:
                store.put_state(SUPERNET_STATE, b"", {"step": int(step), "checkpoint": path,
                                                      "done": int(step) == steps})
    bar.close()
    if steps and store is not None and store.get_state(SUPERNET_STATE) is None:
        store.put_state(SUPERNET_STATE, b"", {"step": steps, "done": True,
                                              "checkpoint": manager.latest_checkpoint})
    return {"steps_run": len(times), "median_step_s": float(np.median(times[1:]))
            if len(times) > 1 else None, "traces": trainer.trace_count()}


def load_finetune_batches(trainer, cfg: dict, out_dir: str) -> None:
    """The fixed fine-tune batches, drawn once and kept on disk so a resume reuses them."""
    import tensorflow as tf
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "finetune_batches.pkl")
    if os.path.exists(path):
        with open(path, "rb") as f:
            batches = pickle.load(f)
    else:
        iterator = trainer.engine._train_iterator  # pylint: disable=protected-access
        batches = [tf.nest.map_structure(lambda t: t.numpy(), next(iterator))
                   for _ in range(cfg["finetune"]["batches"])]
        with open(path + ".tmp", "wb") as f:
            pickle.dump(batches, f)
        os.replace(path + ".tmp", path)
    trainer.finetune_batches = [tf.nest.map_structure(tf.constant, b) for b in batches]


# ------------------------------------------------------------------------ ranking
def rank_check(trainer, cfg: dict, constraint: Constraint, progress: bool = True) -> dict:
    """Kendall tau between one-shot scores (with/without fine-tune) and stand-alone ones.

    Stand-alone = the same layers trained from their initial weights on ONE path only
    (exactly the child network: untaken branches neither run nor move), for
    `rank_check.train_steps` steps, same data and optimizer, then evaluated.
    """
    from tqdm import tqdm
    score_key = cfg["evolution"]["score"]
    rng = np.random.default_rng([cfg["seed"], 7])
    specs = sample_selected(space_of(cfg), constraint, rng, cfg["rank_check"]["architectures"])
    rows = []
    trained = trainer.snapshot()
    for spec in tqdm(specs, desc="one-shot", disable=not progress):
        plain, _ = trainer.score(spec, 0)
        tuned, _ = trainer.score(spec, cfg["finetune"]["steps"])
        rows.append({"arch": spec.search_key(), "madds": constraint.madds(spec),
                     "one_shot": plain[score_key], "one_shot_finetuned": tuned[score_key]})
    fresh = trainer.initial_state
    iterator = trainer.engine._train_iterator  # pylint: disable=protected-access
    t0 = time.perf_counter()
    for row, spec in zip(rows, specs):
        trainer.restore(fresh)
        for _ in tqdm(range(cfg["rank_check"]["train_steps"]), desc="stand-alone",
                      disable=not progress, leave=False):
            trainer.step(spec, next(iterator))
        row["stand_alone"] = trainer.evaluate(spec)[score_key]
    trainer.restore(trained)
    sa = [r["stand_alone"] for r in rows]
    return {"score": score_key, "architectures": rows,
            "kendall_tau_finetuned": kendall_tau([r["one_shot_finetuned"] for r in rows], sa),
            "kendall_tau_no_finetune": kendall_tau([r["one_shot"] for r in rows], sa),
            "stand_alone_s": time.perf_counter() - t0}
