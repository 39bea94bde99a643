"""`python -m mnas_tf.train`: train and/or evaluate a registered experiment.

Model Garden's trainer does the work (Orbit controller, checkpoints every
`trainer.checkpoint_interval` steps, TensorBoard summaries under --model-dir, resume from
the latest checkpoint after a kill, CPU / GPU / mirrored / TPU strategies from
`runtime.*`). This entry point adds our registries, YAML with a named base experiment,
the embedded dataset, one-line errors, and COCO metrics written to metrics.json.

    python -m mnas_tf.train --experiment mnasfpn_synthetic --model-dir runs/train
    python -m mnas_tf.train --config configs/experiments/mnasfpn_mobilenetv2_coco.yaml \\
        --params-override "task.train_data.input_path=/data/coco/train*" --model-dir DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Optional, Sequence

from mnas_tf import console  # noqa: E402  (first: quiets TensorFlow before it loads)
from mnas_tf.overrides import parse_override  # noqa: E402,F401  (re-exported for the CLIs)

MODES = ("train", "eval", "train_and_eval")
COCO_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "ARmax1", "ARmax10", "ARmax100",
             "ARs", "ARm", "ARl")


def load_params(experiment: Optional[str], configs: Sequence[str], overrides: Sequence[str],
                data: Optional[dict] = None, progress: bool = True):
    """Experiment, then YAML files in order, then --params-override, all strict. A YAML's
    `data: {train: {annotations, images}, val: {...}}` section (or `data`, from the
    --train-/--val- flags, over it) is your own COCO dataset, prepared once and cached
    (mnas_tf.data.user); it sets the input paths and model.num_classes."""
    from mnas_tf.experiment import load_experiment, merge_data_sections
    base = experiment or (configs[0] if configs else None)
    rest = list(configs[1:] if not experiment else configs)
    layers: list = []
    section: dict = {}
    for path in rest:
        layer = _yaml_file(path)
        if isinstance(layer.get("data"), dict):
            section = layer.pop("data")
        layers.append(layer)
    layers.extend(parse_override(o) for o in overrides)
    return load_experiment(base, layers, data=merge_data_sections(section, data),
                           progress=progress)


def data_flags(parser) -> None:
    """--train-annotations/--train-images/--val-annotations/--val-images (own COCO data)."""
    g = parser.add_argument_group("your own data (COCO JSON + image folder)")
    for part in ("train", "val"):
        g.add_argument(f"--{part}-annotations", metavar="FILE")
        g.add_argument(f"--{part}-images", metavar="DIR")


def data_from_flags(args) -> dict:
    out: dict = {}
    for part in ("train", "val"):
        for key in ("annotations", "images"):
            value = getattr(args, f"{part}_{key}", None)
            if value is not None:
                out.setdefault(part, {})[key] = value
    return out


def _yaml_file(path: str) -> dict:
    from mnas_tf.config_files import read_mapping
    data = read_mapping(path)
    data.pop("experiment", None)
    return data


def check_model_dir(params, model_dir: str) -> None:
    """Refuses, before anything is written, a --model-dir that cannot be written or whose
    checkpoint belongs to a different model (resuming it would overwrite params.yaml and
    then fail to restore)."""
    import yaml

    from mnas_tf.experiment import ConfigError
    from mnas_tf.writable import check_writable_dir
    check_writable_dir(model_dir, "--model-dir")
    saved = os.path.join(model_dir, "params.yaml")
    if not (os.path.isfile(saved) and os.path.isfile(os.path.join(model_dir, "checkpoint"))):
        return
    try:
        with open(saved) as f:
            old = (yaml.safe_load(f) or {}).get("task", {}).get("model", {})
    except yaml.YAMLError:
        return  # not ours to judge; Model Garden rewrites it
    new = yaml.safe_load(yaml.safe_dump(params.task.model.as_dict()))
    for model in (old, new):  # post-processing holds no weights: NMS settings may change
        if isinstance(model, dict):
            model.pop("detection_generator", None)
    differ = _differences(old, new, "task.model")
    if differ:
        raise ConfigError(f"--model-dir {model_dir} holds a checkpoint of a different model "
                          f"(differs in {', '.join(differ[:3])}); give a new --model-dir or "
                          f"the original config to resume")


def _differences(old: Any, new: Any, where: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for key in sorted(set(old) | set(new), key=str)
                for d in _differences(old.get(key), new.get(key), f"{where}.{key}")]
    return [] if old == new else [where]


def check_schedule(params) -> None:
    """Orbit's interval rules, checked before anything is built, with the keys named."""
    from mnas_tf.experiment import ConfigError
    trainer = params.trainer
    if trainer.train_steps <= 0 or trainer.steps_per_loop <= 0:
        raise ConfigError("trainer.train_steps and trainer.steps_per_loop must be positive")
    for key in ("summary_interval", "checkpoint_interval"):
        value = getattr(trainer, key)
        if value and value > 0 and value % trainer.steps_per_loop:
            raise ConfigError(f"trainer.{key} ({value}) must be a multiple of "
                              f"trainer.steps_per_loop ({trainer.steps_per_loop})")


def _single_log_handler() -> None:
    """Some imported library calls logging.basicConfig: keep absl's handler only, so
    every progress line prints once (a later basicConfig is a no-op once root has one)."""
    import logging as pylogging

    from absl import logging as absl_logging
    absl_logging.use_absl_handler()
    root = pylogging.getLogger()
    for handler in list(root.handlers):
        if type(handler).__name__ != "ABSLHandler":
            root.removeHandler(handler)


def coco_metrics(logs: Optional[dict]) -> dict:
    """The COCO numbers of an eval log as plain floats."""
    if not logs:
        return {}
    return {k: float(logs[k]) for k in COCO_KEYS if k in logs}


def run(params, model_dir: str, mode: str = "train_and_eval") -> dict:
    """Runs Model Garden's experiment loop; returns the final COCO metrics (if evaluated)."""
    from absl import logging

    previous_verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.INFO)
    _single_log_handler()
    try:
        return _run_experiment(params, model_dir, mode)
    finally:  # progress lines belong to this run, not to whatever the process does next
        logging.set_verbosity(previous_verbosity)


def _run_experiment(params, model_dir: str, mode: str) -> dict:
    import tensorflow as tf
    from official.common import distribute_utils
    from official.core import task_factory, train_lib, train_utils
    from official.modeling import performance

    from mnas_tf.data_paths import resolve_data_paths

    check_schedule(params)
    check_model_dir(params, model_dir)
    params = resolve_data_paths(params)
    params.validate()
    params.lock()
    os.makedirs(model_dir, exist_ok=True)
    if "train" in mode:
        train_utils.serialize_config(params, model_dir)
    if params.runtime.mixed_precision_dtype:
        performance.set_mixed_precision_policy(params.runtime.mixed_precision_dtype)
    strategy = distribute_utils.get_distribution_strategy(
        distribution_strategy=params.runtime.distribution_strategy,
        all_reduce_alg=params.runtime.all_reduce_alg, num_gpus=params.runtime.num_gpus,
        tpu_address=params.runtime.tpu)
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    with strategy.scope():
        task = task_factory.get_task(params.task, logging_dir=model_dir)
    latest_eval: dict = {}
    train_lib.run_experiment(
        distribution_strategy=strategy, task=task, mode=mode, params=params,
        model_dir=model_dir, eval_actions=[lambda logs: latest_eval.update(logs)])
    metrics = coco_metrics(latest_eval)
    if metrics:
        with open(os.path.join(model_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
    return metrics


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnas_tf.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", help="registered experiment name")
    parser.add_argument("--config", action="append", default=[],
                        help="YAML overrides (repeatable); its `experiment:` key names the "
                             "base when --experiment is not given")
    parser.add_argument("--params-override", action="append", default=[],
                        help="'a.b=1,c.d=x' or a YAML/JSON mapping (repeatable)")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--mode", choices=MODES, default="train_and_eval")
    data_flags(parser)
    console.add_flag(parser)
    args = parser.parse_args(console.cli(argv))
    if not args.experiment and not args.config:
        parser.error("give --experiment NAME or --config YAML")

    from mnas_tf.arch import ArchitectureError
    from mnas_tf.data import DataError
    from mnas_tf.experiment import ConfigError
    from mnas_tf.tasks import CheckpointError
    try:
        params = load_params(args.experiment, args.config, args.params_override,
                             data_from_flags(args))
        with console.quiet_stdout():  # pycocotools prints its progress and tables
            metrics = run(params, args.model_dir, args.mode)
    except (ConfigError, ArchitectureError, DataError, FileNotFoundError,
            CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if metrics:
        print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
