"""A warm-start backbone for proxy children, made once and cached.

The MnasFPN paper warm-starts MobileNetV2 from an ImageNet checkpoint; a head trained for a
few hundred CPU steps on a random backbone scores mAP 0 whatever its architecture, which
gives the controller nothing to learn from. Nothing may be downloaded here, so the search
makes its own warm start: it trains the published MnasFPN detector on the proxy's
training split for `warm_start_steps` steps and keeps its backbone as
`tf.train.Checkpoint(backbone=...)`, the layout Model Garden's
`init_checkpoint_modules: backbone` reads. Children start from it (and, with
`freeze_backbone`, train only their head and predictor).

The checkpoint depends only on the data, the schedule and the seed, so it is cached under
``$MNAS_TF_CACHE/warm_start/KEY`` (default ``~/.cache/mnas_tf``) and shared by every
search and worker on the machine: a lock makes concurrent workers build it once, and
``manifest.json``, written last, marks a finished build (a killed build starts over).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import sys
import time
from typing import Callable, Optional

from mnas_tf.proxy_result import OK

VERSION = 1
MANIFEST = "manifest.json"
PREFIX = "backbone"


class WarmStartError(RuntimeError):
    """The warm-start training itself failed (e.g. its loss diverged)."""


def cache_root() -> str:
    return os.path.join(os.environ.get("MNAS_TF_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "mnas_tf"), "warm_start")


def cache_dir(cfg, train_input_path: str) -> str:
    """Where the checkpoint for proxy config `cfg` lives; the name hashes everything the
    weights depend on: resolved data, schedule, seed, overrides."""
    key = {"version": VERSION, "experiment": cfg.experiment, "train_data": train_input_path,
           "input_size": cfg.input_size,
           "batch_size": cfg.batch_size, "learning_rate": cfg.learning_rate,
           "warmup_steps": cfg.warmup_steps, "steps": cfg.warm_start_steps,
           "seed": cfg.warm_start_seed, "data_seed": getattr(cfg, "data_seed", 0),
           "params_override": cfg.params_override}
    if getattr(cfg, "warm_start_heads", 0):  # keys of published-cell warm starts unchanged
        key["heads"] = [cfg.warm_start_heads, cfg.warm_start_space]
    text = json.dumps(key, sort_keys=True, default=str)
    return os.path.join(cache_root(), hashlib.sha256(text.encode()).hexdigest()[:16])


def read_manifest(directory: str) -> Optional[dict]:
    try:
        with open(os.path.join(directory, MANIFEST), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cached_checkpoint(cfg) -> Optional[str]:
    """The finished warm-start checkpoint prefix for proxy config `cfg`, or None; cheap (no
    input pipeline), so a driver can check before it starts workers."""
    from mnas_tf.data_paths import resolve_data_paths
    from mnas_tf.experiment import load_experiment
    # the same data as the engine's (ProxyEngine): an experiment's own synthetic validation
    # split would be resolved (and checked against num_classes) otherwise
    params = resolve_data_paths(load_experiment(cfg.experiment, [
        {"task": {"train_data": {"input_path": cfg.train_data},
                  "validation_data": {"input_path": cfg.val_data},
                  "annotation_file": cfg.val_annotations}}, *cfg.params_override]),
        progress=False)
    directory = cache_dir(cfg, params.task.train_data.input_path)
    return os.path.join(directory, PREFIX) if read_manifest(directory) else None


def backbone_checkpoint(engine, cfg, log: Optional[Callable[[str], None]] = None) -> str:
    """The warm-start checkpoint prefix for proxy config `cfg` (whose data `engine` holds),
    trained now if it is not cached yet."""
    from mnas_tf.data.synthetic import cache_lock
    directory = cache_dir(cfg, engine.params.task.train_data.input_path)
    prefix = os.path.join(directory, PREFIX)
    if read_manifest(directory):
        return prefix
    os.makedirs(cache_root(), exist_ok=True)
    with cache_lock(cache_root()):
        if read_manifest(directory):  # another worker finished it while we waited
            return prefix
        _train(engine, cfg, directory, log or (lambda line: print(line, file=sys.stderr)))
    return prefix


def warm_start_heads(cfg) -> list:
    """The heads the backbone is trained with: the published MnasFPN, or
    `warm_start_heads` cells sampled from `warm_start_space` (seeded by warm_start_seed)."""
    if not getattr(cfg, "warm_start_heads", 0):
        return ["mnasfpn"]
    import numpy as np
    from mnas_tf.spaces import get_space
    space, rng = get_space(cfg.warm_start_space), np.random.default_rng(cfg.warm_start_seed)
    return [space.sample(rng) for _ in range(cfg.warm_start_heads)]


def _train(engine, cfg, directory: str, log: Callable[[str], None]) -> None:
    """Trains the backbone with each head in turn (warm_start_steps split between them,
    the backbone carried over through a checkpoint) and keeps the last backbone."""
    import tensorflow as tf

    partial = directory + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    heads = warm_start_heads(cfg)
    what = ("the published MnasFPN" if heads == ["mnasfpn"] else
            f"{len(heads)} heads sampled from the {cfg.warm_start_space} space in turn")
    log(f"[warm start] training {what} for {cfg.warm_start_steps} steps on the proxy's "
        f"training split, once; its backbone is cached at {directory}")
    saved = {}

    def save(model):
        saved["path"] = tf.train.Checkpoint(backbone=model.backbone).write(
            os.path.join(partial, PREFIX))

    start, done, results = time.perf_counter(), 0, []
    for i, head in enumerate(heads):
        steps = (cfg.warm_start_steps * (i + 1)) // len(heads) - done
        schedule = dataclasses.replace(
            cfg, train_steps=steps, warm_start_steps=0, freeze_backbone=False,
            init_checkpoint=saved.get("path"), steps_per_check=min(cfg.steps_per_check, steps),
            warmup_steps=min(cfg.warmup_steps, steps - 1))
        offset = done
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables
            result = engine.run(head, seed=cfg.warm_start_seed + i, on_trained=save,
                                config=schedule, on_chunk=lambda n, _, loss: log(
                                    f"[warm start] step {offset + n}/{cfg.warm_start_steps} "
                                    f"loss {loss:.3f}"))
        if result.status != OK or "path" not in saved:
            shutil.rmtree(partial, ignore_errors=True)
            raise WarmStartError(f"warm-start training failed (head {i + 1}/{len(heads)}): "
                                 f"{result.reason}")
        done += steps
        results.append(result.metrics)
    manifest = {"steps": cfg.warm_start_steps, "seed": cfg.warm_start_seed,
                "heads": len(heads) if heads != ["mnasfpn"] else "mnasfpn",
                "seconds": round(time.perf_counter() - start, 1),
                "head_metrics": results}
    if heads == ["mnasfpn"]:
        manifest["published_mnasfpn_metrics"] = results[0]
    with open(os.path.join(partial, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(partial, directory)
    log(f"[warm start] done in {manifest['seconds']:.0f} s; the last head scores "
        + ", ".join(f"{k} {v:.4f}" for k, v in results[-1].items() if k in ("AP", "AP50")))
