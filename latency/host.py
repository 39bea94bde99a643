"""Host backend: the LiteRT Python interpreter on this machine's CPU.

Runs the same runtime as the phone (TFLite kernels + the XNNPACK delegate, which LiteRT
applies by default; we never turn it off) so CI can exercise the whole latency pipeline.
Host numbers are not phone numbers: they key separate LUTs through `fingerprint()`.
"""

from __future__ import annotations

import gc
import os
import platform
import time
from typing import Any

import numpy as np

from latency.errors import LatencyError
from latency.measure import (PROTOCOL_RUNS, PROTOCOL_WARMUP, LatencyBackend, LatencyResult,
                             check_counts, check_model)
from latency.stats import summarize_ms


def cpu_model() -> str:
    """Human-readable CPU name from /proc/cpuinfo (falls back to platform data)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def litert_version() -> str:
    """Version of the ai-edge-litert wheel that runs the model."""
    try:
        import ai_edge_litert
        return f"ai-edge-litert {getattr(ai_edge_litert, '__version__', 'unknown')}"
    except ImportError:
        return "ai-edge-litert (not installed)"


def random_inputs(details: list[dict[str, Any]], seed: int = 0) -> list[np.ndarray]:
    """One random array per input: floats in [-1, 1], integers within their dtype's range.

    Wide integers (int32/int64) stay in [0, 255] so index-like inputs remain plausible.
    """
    rng = np.random.default_rng(seed)
    arrays = []
    for d in details:
        dtype, shape = np.dtype(d["dtype"]), tuple(int(s) for s in d["shape"])
        if dtype.kind == "f":
            arrays.append(rng.uniform(-1.0, 1.0, shape).astype(dtype))
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            lo, hi = (0, 255) if dtype.itemsize > 2 else (int(info.min), int(info.max))
            arrays.append(rng.integers(lo, hi, shape, endpoint=True).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.integers(0, 1, shape, endpoint=True).astype(bool))
        else:
            raise LatencyError(f"input {d['name']!r} has dtype {dtype}, which the host backend "
                               f"cannot fill with random data; benchmark a model with "
                               f"numeric inputs")
    return arrays


class HostBackend(LatencyBackend):
    """LiteRT `Interpreter(num_threads=threads)` with default delegates (XNNPACK)."""

    name = "host"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def read_load(self) -> tuple[str, str]:
        """/proc/loadavg and /proc/stat of this machine (see `latency.load`)."""
        from latency.load import read_local
        return read_local()

    def fingerprint(self, threads: int = 1) -> dict[str, Any]:
        return {
            "backend": self.name,
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "os": f"{platform.system()} {platform.release()}",
            "threads": threads,
            "delegate": "xnnpack",  # LiteRT's default op resolver (AUTO) applies it
            "runtime": litert_version(),
        }

    def measure(self, model_path: str, threads: int = 1, warmup: int = PROTOCOL_WARMUP,
                runs: int = PROTOCOL_RUNS) -> LatencyResult:
        check_counts(threads, warmup, runs)
        path = check_model(model_path)
        t0 = time.perf_counter_ns()
        interpreter = self._load(path, threads)
        init_ms = (time.perf_counter_ns() - t0) / 1e6
        for d, array in zip(interpreter.get_input_details(),
                            random_inputs(interpreter.get_input_details(), self.seed),
                            strict=True):
            interpreter.set_tensor(d["index"], array)

        first_ms = _timed_invoke(interpreter)
        for _ in range(warmup - 1):
            interpreter.invoke()
        gc_was_enabled = gc.isenabled()
        gc.disable()  # a collection inside a timed run is noise, not model latency
        try:
            samples = [_timed_invoke(interpreter) for _ in range(runs)]
        finally:
            if gc_was_enabled:
                gc.enable()

        device = self.fingerprint(threads)
        device.update(_delegate_evidence(interpreter))
        return LatencyResult(**summarize_ms(samples), runs=runs, warmup_runs=warmup,
                             backend=self.name, device=device, model=path,
                             init_ms=init_ms, first_inference_ms=first_ms,
                             samples_ms=samples)

    @staticmethod
    def _load(path: str, threads: int):
        """Interpreter with static batch-1 shapes, tensors allocated."""
        from ai_edge_litert.interpreter import Interpreter
        try:
            interpreter = Interpreter(model_path=path, num_threads=threads)
            for d in interpreter.get_input_details():
                signature = [int(s) for s in d["shape_signature"]]
                if -1 in signature:  # dynamic dims (batch) -> 1: the paper times batch 1
                    interpreter.resize_tensor_input(d["index"],
                                                    [1 if s == -1 else s for s in signature])
            interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            last = (str(e).strip().splitlines() or ["unknown error"])[-1]
            raise LatencyError(f"LiteRT could not load {path}: {last}; check that the "
                               f"model uses only builtin TFLite ops") from e
        return interpreter


def _timed_invoke(interpreter) -> float:
    """Wall time of one `invoke()` in milliseconds."""
    start = time.perf_counter_ns()
    interpreter.invoke()
    return (time.perf_counter_ns() - start) / 1e6


def _delegate_evidence(interpreter) -> dict[str, Any]:
    """Whether XNNPACK took nodes: LiteRT lists each delegated partition as a DELEGATE op."""
    try:
        ops = interpreter._get_ops_details()  # no public API exposes the execution plan
    except Exception:  # noqa: BLE001 - private API; absence must not break measuring
        return {"xnnpack_applied": None, "delegate_partitions": None}
    partitions = sum(1 for op in ops if op.get("op_name") == "DELEGATE")
    return {"xnnpack_applied": partitions > 0, "delegate_partitions": partitions}
