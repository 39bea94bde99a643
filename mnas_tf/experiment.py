"""Loads an experiment config by name or YAML, with overrides, and clear errors.

A YAML file holds Model Garden overrides on top of a registered experiment; it names
that experiment in a top-level `experiment:` key (default: mnasfpn_mobilenetv2_coco).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Mapping, Optional, Sequence

import yaml
from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import hyperparams

from mnas_tf import registry_imports  # noqa: F401  registers our experiments
from mnas_tf.config_files import ConfigError, read_mapping
from mnas_tf.config_types import check_annotated
from mnas_tf.overrides import parse_override

DEFAULT_EXPERIMENT = "mnasfpn_mobilenetv2_coco"


def registered_experiments() -> list[str]:
    return sorted(exp_factory._REGISTERED_CONFIGS)  # pylint: disable=protected-access


def merge_data_sections(base: Optional[Mapping], over: Optional[Mapping]) -> dict:
    """`over`'s `data:` parts (train, val, ...) laid over `base`'s, key by key."""
    out = dict(base or {})
    for part, value in (over or {}).items():
        out[part] = ({**(out.get(part) or {}), **value}
                     if isinstance(value, Mapping) and isinstance(out.get(part), Mapping)
                     else value)
    return out


def load_experiment(ref: Optional[str] = None,
                    overrides: Sequence[Mapping[str, Any] | str] = (),
                    data: Optional[Mapping[str, Any]] = None,
                    progress: bool = False) -> cfg.ExperimentConfig:
    """Experiment `ref` (a registered name or a YAML path) plus overrides (dicts/YAML text).

    Your own COCO data: a YAML ref's `data: {train: {annotations, images}, val: {...}}`
    section, with `data` (e.g. from the --train-/--val- flags) merged over it part by part,
    is prepared once and cached (mnas_tf.data.user) and sets the input paths, the
    evaluation annotations and model.num_classes, after every other layer."""
    ref = ref or DEFAULT_EXPERIMENT
    layers: list[Any] = []
    section: dict = {}
    if ref.endswith((".yaml", ".yml")):
        body = read_mapping(ref)
        name = body.pop("experiment", DEFAULT_EXPERIMENT)
        found = body.pop("data", None)
        if found is not None:  # a non-mapping: data_override names what is wrong with it
            section = dict(found) if isinstance(found, Mapping) else {"train": found}
        layers.append((ref, body))
    else:
        name = ref
    section = merge_data_sections(section, data)
    if name not in registered_experiments():
        raise ConfigError(f"unknown experiment {name!r}; registered experiments: "
                          f"{', '.join(registered_experiments())}")
    params = exp_factory.get_exp_config(name)
    layers.extend(("override", o) for o in overrides)
    if section:
        from mnas_tf.data.coco import DataError
        from mnas_tf.data.user import data_override
        try:
            layers.append(("data", data_override(section, progress=progress)))
        except DataError as e:
            raise ConfigError(str(e)) from None
    for source, layer in layers:
        if isinstance(layer, str):
            layer = parse_override(layer)
        if isinstance(layer, str):
            try:
                layer = yaml.safe_load(layer) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{source}: not valid YAML/JSON: {e}") from None
        if not isinstance(layer, Mapping):
            raise ConfigError(f"{source}: overrides must be a mapping of config keys")
        _check_known_keys(params, layer, source)
        try:
            params = hyperparams.override_params_dict(params, layer, is_strict=True)
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            raise ConfigError(f"{source}: {_describe_override_error(e)}") from None
    try:
        params.validate()
        if hasattr(params.task, "check"):  # task configs with value checks of their own
            params.task.check()
    except (KeyError, ValueError) as e:
        raise ConfigError(f"invalid config: {e}") from None
    return params


def check_input_size(params: cfg.ExperimentConfig) -> None:
    """Padded pyramids need H and W divisible by 2^max_level (64 at level 6), or the levels
    do not align and Keras fails deep in the decoder with a shape error."""
    model = params.task.model
    height, width = model.input_size[:2]
    step = 2 ** model.max_level
    # without padding (SSD-style heads) every level is ceil(size / stride) and aligns
    if getattr(params.task.train_data.parser, "pad", True) and (height % step or width % step):
        raise ConfigError(f"input size {height}x{width} must be a multiple of {step} "
                          f"(2^max_level) so every pyramid level aligns; pass --input-size "
                          f"with multiples of {step}")


def _check_known_keys(config: hyperparams.Config, layer: Mapping[str, Any], source: str,
                      path: str = "") -> None:
    """Names the first unknown key with the valid ones at that level (before overriding)."""
    valid = config.as_dict()
    try:
        hints = typing.get_type_hints(type(config))
    except Exception:  # pylint: disable=broad-except  (unresolvable annotations: unchecked)
        hints = {}
    if isinstance(config, hyperparams.OneOfConfig):
        valid = {f.name: None for f in dataclasses.fields(config)}
    for key, value in layer.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in valid:
            raise ConfigError(f"{source}: unknown config key '{where}'; valid keys here: "
                              f"{', '.join(sorted(map(str, valid)))}")
        child = getattr(config, key, None)
        if isinstance(value, Mapping) and isinstance(child, hyperparams.Config):
            _check_known_keys(child, value, source, where)
        elif not isinstance(child, hyperparams.Config) and key in hints:
            # a string where a number belongs would crash deep in Keras or NumPy
            check_annotated(value, hints[key], f"{source}: {where}")


def _describe_override_error(error: Exception) -> str:
    text = str(error.args[0] if error.args else error)
    return text.strip("'\"") + " (check the key against the experiment's config)"
