"""Search spaces over architecture specs, where the search and the latency table can both
import them (`latency/` must not reach up into `search/`)."""

from mnas_tf.spaces.cell import (PAPER_CARDINALITY, SPACE_LAYOUT, SPACES, SYMMETRIC_MERGES, CellSpace,
                                 DecisionError, MnasFPNSpace, Step, canonical_dict, get_space)

__all__ = ["PAPER_CARDINALITY", "SPACE_LAYOUT", "SPACES", "SYMMETRIC_MERGES", "CellSpace", "DecisionError",
           "MnasFPNSpace", "Step", "canonical_dict", "get_space"]
