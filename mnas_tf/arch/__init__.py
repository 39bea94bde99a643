"""Architectures as data: validated, JSON round-trippable specs and the named ones we ship."""

from mnas_tf.arch.spec import (ArchitectureError, BlockSpec, MnasFPNSpec, make_divisible,
                               scale_depth)
from mnas_tf.arch.named import CONFIG_DIR, architecture_names, load_architecture

__all__ = ["ArchitectureError", "BlockSpec", "MnasFPNSpec", "make_divisible", "scale_depth",
           "CONFIG_DIR", "architecture_names", "load_architecture"]
