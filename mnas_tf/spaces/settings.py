"""Search-space overrides (`space_overrides`, `latency.lut --space-overrides`), type-checked.

`get_space(name, channels=16)` would accept a scalar where a list of choices belongs and
fail later inside the decoder; here every setting is checked against the space's declared
type first and lists become the tuples the frozen space holds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from mnas_tf.config_types import check_fields


def space_from_settings(name: str, overrides: Mapping[str, Any], where: str = "space_overrides"):
    """The space `name` with `overrides`; ValueError (one line) for a setting of the wrong
    type, an unknown setting or an unknown space."""
    from mnas_tf.spaces.cell import get_space
    base = get_space(name)
    if not isinstance(overrides, Mapping):
        raise ValueError(f"{where} must be a mapping of space settings, got {overrides!r}")
    if dataclasses.is_dataclass(base):
        overrides = check_fields(type(base), overrides, where, error=ValueError)
    return get_space(name, **overrides)
