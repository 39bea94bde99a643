"""What one proxy run returns: its status, COCO metrics, timings and score.

Its own module because both sides of the warm start use it: `mnas_tf.proxy` makes results
and `mnas_tf.warm_start` (which `ProxyEngine` calls, and which runs the engine) reads
them. `mnas_tf.proxy` re-exports every name here.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

OK, FAILED = "OK", "FAILED"
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


@dataclasses.dataclass
class ProxyResult:
    status: str
    metrics: dict
    wall_time_s: float
    steps: int
    reason: str = ""
    final_loss: Optional[float] = None
    timings: dict = dataclasses.field(default_factory=dict)

    metric: str = "AP"

    @property
    def score(self) -> float:
        """The metric the config scores children by (AP unless `metric` says otherwise)."""
        return float(self.metrics.get(self.metric, 0.0))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
