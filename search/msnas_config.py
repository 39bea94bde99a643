"""Config of an MSNAS search: embedded defaults, YAML overrides, one-line errors.

The defaults are the embedded CPU run: an 8-block, 16-channel space at 128 px on the
synthetic dataset, a short super-net schedule and a small evolution, about 15 minutes
on 2 CPU cores. The paper's settings (P=50, T=20, 1% MAdds tolerance, 100 fine-tune
steps at 1/10 of the LR) are the same keys with bigger values.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Optional

from mnas_tf.config_files import ConfigError, read_mapping
from mnas_tf.config_types import check_like

DEFAULTS: dict[str, Any] = {
    "experiment": "msnas_synthetic",
    "seed": 0,
    "space": {"num_blocks": 8, "channels": 16},
    "data": {"input_size": 128, "batch_size": 8, "eval_batch_size": 8,
             "max_eval_batches": 2, "train_data": "synthetic://search_train",
             "val_data": "synthetic://search_val"},
    "head": {"num_convs": 1, "num_filters": 32},
    "supernet": {"steps": 1200, "learning_rate": 0.003, "checkpoint_every": 100},
    "finetune": {"steps": 10, "learning_rate": 0.0003, "batches": 5},
    "evolution": {"population": 8, "iterations": 6, "max_attempts": 60,
                  "random_children": 2, "top_k": 5, "mutation_prob": 0.1, "score": "AP50"},
    "constraint": {"type": "madds", "target": None, "tolerance": 0.05},
    "rank_check": {"architectures": 6, "train_steps": 300},
}

SCORES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
CONSTRAINTS = ("madds", "latency", "none")


def _merge(base: dict, layer: Mapping, where: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in layer.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in base:
            raise ConfigError(f"unknown config key '{path}'; valid keys here: "
                              f"{', '.join(sorted(base))}")
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key '{path}' must be a mapping with keys "
                                  f"{', '.join(sorted(base[key]))}")
            out[key] = _merge(base[key], value, path)
        else:
            check_like(value, base[key], path)
            out[key] = value
    return out


def _positive(cfg: dict, section: str, key: str, allow_zero: bool = False) -> None:
    value = cfg[section][key]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(f"config key '{section}.{key}' must be a "
                          f"{'non-negative' if allow_zero else 'positive'} number, got {value!r}")


def validate(cfg: dict) -> dict:
    for section, key in (("space", "num_blocks"), ("space", "channels"),
                         ("data", "input_size"), ("data", "batch_size"),
                         ("data", "eval_batch_size"), ("supernet", "learning_rate"),
                         ("supernet", "checkpoint_every"), ("finetune", "learning_rate"),
                         ("finetune", "batches"), ("evolution", "population"),
                         ("evolution", "iterations"), ("evolution", "max_attempts"),
                         ("evolution", "top_k"), ("rank_check", "architectures"),
                         ("rank_check", "train_steps")):
        _positive(cfg, section, key)
    for section, key in (("supernet", "steps"), ("finetune", "steps"),
                         ("evolution", "random_children"), ("constraint", "tolerance")):
        _positive(cfg, section, key, allow_zero=True)
    if cfg["data"]["input_size"] % 64:
        raise ConfigError(f"config key 'data.input_size' must be a multiple of 64 (the "
                          f"coarsest stride), got {cfg['data']['input_size']}")
    if cfg["evolution"]["score"] not in SCORES:
        raise ConfigError(f"config key 'evolution.score' must be one of {', '.join(SCORES)}, "
                          f"got {cfg['evolution']['score']!r}")
    target = cfg["constraint"]["target"]
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))
                               or target <= 0):
        raise ConfigError(f"config key 'constraint.target' must be a positive number (MAdds) "
                          f"or null, got {target!r}")
    if cfg["constraint"]["type"] not in CONSTRAINTS:
        raise ConfigError(f"config key 'constraint.type' must be one of "
                          f"{', '.join(CONSTRAINTS)}, got {cfg['constraint']['type']!r}")
    if cfg["constraint"]["type"] == "latency":
        raise ConfigError("config key 'constraint.type': no latency LUT exists for the MSNAS "
                          "space (latency.lut builds the MnasFPN-family head spaces only); "
                          "use 'madds'")
    prob = cfg["evolution"]["mutation_prob"]
    if not isinstance(prob, (int, float)) or isinstance(prob, bool) or not 0 < prob <= 1:
        raise ConfigError("config key 'evolution.mutation_prob' must be in (0, 1]")
    return cfg


def load_config(path: Optional[str] = None, **overrides: Any) -> dict:
    """Defaults, then the YAML file, then `section__key=value` overrides (None: skipped)."""
    cfg = copy.deepcopy(DEFAULTS)
    if path:
        data = read_mapping(path)
        try:
            cfg = _merge(cfg, data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    for name, value in overrides.items():
        if value is not None:
            section, key = name.split("__")
            cfg = _merge(cfg, {section: {key: value}})
    return validate(cfg)
