"""What every evaluator is: built once per worker, scores one child at a time.

`evaluate` never raises for a child-specific failure: it returns status 'failed' with the
reason, so one bad child never stops a search. `prepare` runs once in the driver, before
any worker starts (the proxy's warm start, the super-net's training), in a spawned process
of its own when it needs TensorFlow, so its progress shows up front and workers find its
results on disk.
"""

from __future__ import annotations

import os
import time
import traceback
from typing import Any, Optional

from mnas_tf import console  # noqa: F401  pylint: disable=unused-import  (first: quiets TensorFlow)


class Evaluator:
    #: whether `prepare` has work to do (then the driver runs it in a spawned process)
    needs_prepare = False

    def __init__(self, config, out_dir: Optional[str] = None):
        from search.spaces import get_space
        self.config, self.out_dir = config, out_dir
        self.space = get_space(config.space, config.space_overrides)
        self._meter = None

    @classmethod
    def is_prepared(cls, config, out_dir: str) -> bool:
        """Whether `prepare`'s results are already on disk (checked without TensorFlow,
        so a resumed search does not start a process for nothing)."""
        return False

    @classmethod
    def prepare(cls, config, out_dir: str, progress: bool = True) -> Optional[dict]:
        """One-off work before the workers start; returns figures for summary.json."""
        return None

    def score(self, spec, seed: int) -> dict[str, Any]:
        """{"status", "map", "metrics", "timings", ...} of one child."""
        raise NotImplementedError

    def evaluate(self, arch: dict, seed: int) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            spec = self.space.spec(arch)
            result = self.score(spec, seed)
            if result["status"] == "done":
                self._costs(spec, result)
        except Exception as e:  # pylint: disable=broad-except  (recorded, never fatal)
            lines = traceback.format_exception_only(type(e), e)
            result = {"status": "failed", "error": lines[-1].strip()[:500], "metrics": {},
                      "timings": {}}
        result["timings"]["total_s"] = time.perf_counter() - start
        result["timings"]["worker_pid"] = os.getpid()
        return result

    def _costs(self, spec, result: dict) -> None:
        """Measured latency and detector MAdds, where the config asks for them (MnasFPN
        family: what the latency table and the exporter know how to build)."""
        from search.objectives import LatencyMeter, detector_madds
        if self.space.cell_space is None:
            return
        if self.config.latency.source == "measure":
            if self._meter is None:
                self._meter = LatencyMeter(self.config)
            result["latency_ms"] = self._meter.measure(spec)
        if self.config.record_madds:
            t = time.perf_counter()
            result["madds"] = detector_madds(self.config, spec)
            result["timings"]["madds_s"] = time.perf_counter() - t
