"""Reading YAML config files with one-line errors (shared by every CLI that takes one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config that cannot be loaded; the message names the key or file and the fix."""


def read_mapping(path: str) -> dict[str, Any]:
    """The mapping in YAML file `path`; ConfigError when missing, malformed or not a map."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f"{path} is not valid YAML ({first}); check its indentation and "
                          f"brackets") from None
    if data is None:  # an empty file would silently run the defaults
        raise ConfigError(f"{path} is empty; give at least one key, or leave the file out "
                          f"to run the defaults")
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys")
    return data
