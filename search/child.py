"""Evaluates one child wherever it runs (a local worker process or a Ray actor).

A `ChildEvaluator` is built once per worker from the search config (as a plain dict, so
it crosses process boundaries) and keeps what children share: the proxy engine (data
pipelines, COCO evaluator) and, for measured latency, the backend. `evaluate` never
raises for a child-specific failure: it returns status 'failed' with the reason.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import traceback
from typing import Any

from mnas_tf import console  # noqa: E402,F401  (first: quiets TensorFlow before it loads)


class ChildEvaluator:
    def __init__(self, config: dict):
        from search.config import load_config
        self.config = load_config(overrides=config)
        self._engine = None
        self._toy = None
        self._backend = None

    def evaluate(self, arch: dict, seed: int) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            from mnas_tf.arch import MnasFPNSpec
            spec = MnasFPNSpec.from_dict(arch)
            if self.config.evaluator == "toy":
                result = self._toy_result(spec)
            else:
                result = self._proxy_result(spec, seed)
            if result["status"] == "done" and self.config.latency.source == "measure":
                result["latency_ms"] = self.measure_latency(spec)
            if result["status"] == "done" and self.config.record_madds:
                t = time.perf_counter()
                result["madds"] = self._madds(spec)
                result["timings"]["madds_s"] = time.perf_counter() - t
        except Exception as e:  # pylint: disable=broad-except  (recorded, never fatal)
            lines = traceback.format_exception_only(type(e), e)
            result = {"status": "failed", "error": lines[-1].strip()[:500], "metrics": {},
                      "timings": {}}
        result["timings"]["total_s"] = time.perf_counter() - start
        result["timings"]["worker_pid"] = os.getpid()
        return result

    def _toy_result(self, spec) -> dict:
        from mnas_tf.spaces import get_space
        from search.spaces.toy import ToyObjective
        if self._toy is None:
            space = get_space(self.config.space, **self.config.space_overrides)
            self._toy = ToyObjective(space, self.config.seed)
        if self.config.toy.delay_s:
            time.sleep(self.config.toy.delay_s)
        score = self._toy.score(spec)
        return {"status": "done", "map": score, "metrics": {"toy_score": score},
                "timings": {}}

    def engine(self):
        """The worker's proxy engine, built on first use (data pipelines, evaluator)."""
        if self._engine is None:
            from mnas_tf import proxy
            self._gpu_memory_growth()
            self._engine = proxy.ProxyEngine(self.config.proxy)
        return self._engine

    def _proxy_result(self, spec, seed: int) -> dict:
        from mnas_tf import proxy
        engine = self.engine()
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables
            r = engine.run(spec, seed=seed)
        if r.status != proxy.OK:
            return {"status": "failed", "error": r.reason, "metrics": r.metrics,
                    "timings": r.timings}
        return {"status": "done", "map": r.score, "metrics": r.metrics,
                "timings": {**r.timings, "steps": r.steps, "final_loss": r.final_loss}}

    @staticmethod
    def _gpu_memory_growth() -> None:
        import tensorflow as tf
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)

    def _latency_params(self):
        from latency.lut import load_shape
        size = self.config.latency.input_size
        return load_shape(self.config.latency.experiment, (size, size))

    def measure_latency(self, spec) -> float:
        """End-to-end median latency (ms) of the spec's TFLite detector on the search's
        latency backend."""
        from latency.lut import _measure_bytes, detector_flatbuffer
        from latency.measure import get_backend
        cfg = self.config.latency
        if self._backend is None:
            kwargs = {"serial": cfg.serial, "benchmark_binary": cfg.benchmark_binary} \
                if cfg.backend == "android" else {}
            self._backend = get_backend(cfg.backend, **kwargs)
        params, _ = self._latency_params()
        flatbuffer = detector_flatbuffer(params, spec)
        return _measure_bytes(self._backend, flatbuffer, cfg.threads, 10, 50).median_ms

    def _madds(self, spec) -> float:
        """MAdds of the whole detector at the latency input size (what ships)."""
        from mnas_tf.describe import describe
        size = self.config.latency.input_size
        override = {"task": {"model": {"decoder": {"mnasfpn": {
            "architecture": spec.to_json()}}}}}
        return float(describe(self.config.latency.experiment, (size, size),
                              [override])["madds"])
