"""Every search space behind one interface (`SearchSpace`), by registry name.

    space = get_space("msnas", {"num_blocks": 13})
    space = get_space("mnasfpn", {"intermediate_blocks": 3})
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from mnas_tf.config_types import describe_value
from mnas_tf.spaces import SPACES as CELL_SPACES
from mnas_tf.spaces import CellSpace
from mnas_tf.spaces.settings import space_from_settings
from search.spaces.base import DecisionError, SearchSpace, Step, Variation
from search.spaces.mnasfpn import CellSearchSpace
from search.spaces.msnas import UTILIZATIONS, MSNASSpace, kendall_tau
from search.spaces.toy import ToyObjective

SPACE_NAMES = (*CELL_SPACES, "msnas")

__all__ = ["SPACE_NAMES", "CellSearchSpace", "DecisionError", "MSNASSpace", "SearchSpace",
           "Step", "ToyObjective", "Variation", "describe", "get_space", "kendall_tau"]


def get_space(name: str, overrides: Optional[Mapping[str, Any]] = None,
              where: str = "space_overrides") -> SearchSpace:
    """The space `name` with its settings overridden; ValueError (one line) naming an
    unknown space or an unknown or mistyped setting."""
    if name not in SPACE_NAMES:
        raise ValueError(f"unknown search space {name!r}; valid spaces are "
                         f"{', '.join(SPACE_NAMES)}")
    overrides = {} if overrides is None else overrides
    if not isinstance(overrides, Mapping):
        raise ValueError(f"{where} must be a mapping of space settings, got {overrides!r}")
    if name in CELL_SPACES:
        return CellSearchSpace(space_from_settings(name, overrides, where))
    valid = [f.name for f in dataclasses.fields(MSNASSpace)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(map(str, unknown))} for "
                         f"space 'msnas'; valid settings are {', '.join(valid)}")
    for field, value in overrides.items():
        if field in ("num_blocks", "channels") and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ValueError(f"{where}.{field} must be a positive integer, got "
                             f"{describe_value(value)}")
    if "utilization" in overrides and overrides["utilization"] not in UTILIZATIONS:
        raise ValueError(f"{where}.utilization must be one of {', '.join(UTILIZATIONS)} "
                         f"(fpn: the FPN-style ablation of Table 2), got "
                         f"{describe_value(overrides['utilization'])}")
    if "constraints" in overrides and not isinstance(overrides["constraints"], bool):
        raise ValueError(f"{where}.constraints must be true or false (false drops eq. 7's "
                         f"range constraints, Table 3), got "
                         f"{describe_value(overrides['constraints'])}")
    return MSNASSpace(**overrides)


def describe(space) -> dict:
    """The space's size and shape as JSON data (a bare CellSpace is wrapped)."""
    if isinstance(space, CellSpace):
        space = CellSearchSpace(space)
    return space.describe()
