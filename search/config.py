"""The search config: a YAML file over the embedded default, validated before anything runs.

Every key is checked against the dataclasses below: an unknown key is named with the valid
ones, and settings that cannot work (a non-positive target or budget, w >= 0) are refused.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Optional


from mnas_tf.config_files import ConfigError, read_mapping
from mnas_tf.config_types import check_fields
from mnas_tf.proxy import ProxyConfig
from mnas_tf.spaces import SPACE_LAYOUT
from search.policy import PPOConfig
from search.rewards import check_reward

SEARCH_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "search"
DEFAULT_CONFIG = SEARCH_CONFIG_DIR / "default.yaml"
EVALUATORS = ("proxy", "toy")
LATENCY_SOURCES = ("lut", "measure", "none")
EXECUTORS = ("local", "ray")


class SearchConfigError(ConfigError):
    """A search config that cannot run; the message names the key and the fix."""


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    kind: str = "mnas"
    target_ms: float = 25.0
    w: float = -0.3


@dataclasses.dataclass(frozen=True)
class LatencyConfig:
    """Where a child's latency comes from: the look-up table, an end-to-end measurement
    of its TFLite model on a backend, or nowhere (accuracy-only search)."""

    source: str = "lut"
    backend: str = "host"
    experiment: str = "mnasfpn_mobilenetv2_coco"
    input_size: int = 320
    threads: int = 1
    quant: str = "float32"  # price children as the float32 or the full-integer int8 model
    serial: Optional[str] = None
    benchmark_binary: Optional[str] = None
    table_dir: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    """The toy evaluator: `delay_s` of sleep per child stands in for training time."""

    delay_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    space: str = "mnasfpn"
    space_overrides: dict = dataclasses.field(default_factory=dict)
    seed: int = 0
    budget: int = 20
    workers: int = 1
    in_flight: int = 2
    update_every: int = 4
    evaluator: str = "proxy"
    summary_every: int = 5
    record_madds: bool = False
    reward: RewardConfig = RewardConfig()
    latency: LatencyConfig = LatencyConfig()
    ppo: PPOConfig = PPOConfig()
    proxy: ProxyConfig = ProxyConfig()
    toy: ToyConfig = ToyConfig()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def run_config(self) -> dict:
        """What a resumed search must share with the original (the budget may grow)."""
        data = self.to_dict()
        data.pop("budget")
        data.pop("summary_every")
        data["space_layout"] = SPACE_LAYOUT  # stores of the old cell layout are refused
        return data


_NESTED = {"reward": RewardConfig, "latency": LatencyConfig, "ppo": PPOConfig,
           "proxy": ProxyConfig, "toy": ToyConfig}


def _build(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise SearchConfigError(f"{where}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SearchConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys are "
                                f"{', '.join(fields)}")
    values = {}
    for key, value in data.items():
        if key in _NESTED and where == "config":
            values[key] = _build(_NESTED[key], value, key)
        elif key in ("params_override", "lr_boundaries"):
            values[key] = tuple(value or ())
        else:
            values[key] = value
    values = check_fields(cls, values, "" if where == "config" else where, SearchConfigError)
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise SearchConfigError(f"{where}: {e}") from None


def _merge(base: dict, layer: dict) -> dict:
    out = dict(base)
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "space_overrides":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: Optional[str] = None, overrides: Optional[dict] = None) -> SearchConfig:
    """The embedded default, with the YAML at `path` and then `overrides` on top."""
    data = read_mapping(str(DEFAULT_CONFIG))
    if path:
        file = Path(path)
        if not file.is_file() and (SEARCH_CONFIG_DIR / f"{path}.yaml").is_file():
            file = SEARCH_CONFIG_DIR / f"{path}.yaml"
        if not file.is_file():
            shipped = ", ".join(sorted(p.stem for p in SEARCH_CONFIG_DIR.glob("*.yaml")))
            raise SearchConfigError(f"search config {path} does not exist (shipped: {shipped})")
        try:
            layer = read_mapping(str(file))
        except ConfigError as e:
            raise SearchConfigError(str(e)) from None
        data = _merge(data, layer)
    data = _merge(data, overrides or {})
    config = _build(SearchConfig, data, "config")
    validate(config)
    return config


def validate(config: SearchConfig) -> None:
    from mnas_tf.spaces.settings import space_from_settings
    positive = ("budget", "workers", "in_flight", "update_every", "summary_every")
    for key in positive:
        if not isinstance(getattr(config, key), int) or getattr(config, key) <= 0:
            raise SearchConfigError(f"{key} must be a positive integer, got "
                                    f"{getattr(config, key)!r}")
    if config.in_flight < config.workers:
        raise SearchConfigError(f"in_flight ({config.in_flight}) must be >= workers "
                                f"({config.workers}) or workers sit idle")
    if config.evaluator not in EVALUATORS:
        raise SearchConfigError(f"evaluator {config.evaluator!r} is unknown; valid: "
                                f"{', '.join(EVALUATORS)}")
    if config.latency.source not in LATENCY_SOURCES:
        raise SearchConfigError(f"latency.source {config.latency.source!r} is unknown; "
                                f"valid: {', '.join(LATENCY_SOURCES)}")
    if config.latency.quant not in ("float32", "int8"):
        raise SearchConfigError(f"latency.quant {config.latency.quant!r} is unknown; "
                                f"valid: float32, int8")
    if config.latency.backend not in ("host", "android"):
        raise SearchConfigError(f"latency.backend {config.latency.backend!r} is unknown; "
                                f"valid: host, android")
    if config.latency.input_size <= 0 or config.latency.input_size % 64:
        raise SearchConfigError(f"latency.input_size must be a positive multiple of 64, got "
                                f"{config.latency.input_size}")
    checkpoint = config.proxy.init_checkpoint
    if checkpoint and not _is_checkpoint(checkpoint):
        raise SearchConfigError(
            f"proxy.init_checkpoint {checkpoint}: no TF checkpoint there (need PREFIX.index "
            f"or a directory with a 'checkpoint' file, written by "
            f"tf.train.Checkpoint(backbone=model.backbone)); or drop the key and set "
            f"proxy.warm_start_steps to let the search make one")
    try:
        check_reward(config.reward.kind, config.reward.target_ms, config.reward.w)
        config.ppo.validate()
        config.proxy.validate()
        space_from_settings(config.space, config.space_overrides)
    except ValueError as e:
        raise SearchConfigError(str(e)) from None


def _is_checkpoint(path: str) -> bool:
    return os.path.exists(path + ".index") or os.path.isfile(os.path.join(path, "checkpoint"))


def default_out_dir(config: SearchConfig) -> str:
    return os.path.join("runs", f"search_{config.space}_seed{config.seed}")
