"""Architectures as data: validated, JSON round-trippable specs and the named ones we ship."""

from mnas_tf.arch.spec import (FAMILIES, ArchitectureError, BlockSpec, CellSpec, MnasFPNSpec,
                               make_divisible, scale_depth)
from mnas_tf.arch.named import CONFIG_DIR, architecture_names, load_architecture

__all__ = ["FAMILIES", "ArchitectureError", "BlockSpec", "CellSpec", "MnasFPNSpec",
           "make_divisible", "scale_depth", "CONFIG_DIR", "architecture_names", "load_architecture"]
