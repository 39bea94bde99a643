"""One interface for every latency backend: the result record, the backend ABC, the registry.

Search and LUT code only ever sees `LatencyResult` and `LatencyBackend.fingerprint()`, so a
host run in CI and a Pixel run over adb are interchangeable (and keyed apart by the
fingerprint: CPU / phone model, threads, delegate, runtime or binary version).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Optional

from latency.errors import LatencyError

# Minimums of the measurement protocol (reference/latency.md: warm-up >= 10, runs >= 50).
PROTOCOL_WARMUP = 10
PROTOCOL_RUNS = 50

_BACKENDS = {
    "host": "latency.host:HostBackend",
    "android": "latency.android:AndroidBackend",
}


@dataclass
class LatencyResult:
    """Latency of one model on one device; times in milliseconds.

    `median_estimated` is True when the source printed no median (old benchmark_model
    builds print only avg/std): `median_ms` then holds the mean. Fields a source did not
    report are None. `runs` is the number of timed runs actually made (benchmark_model may
    do more than requested, because of its --min_secs).
    """

    median_ms: float
    mean_ms: float
    std_ms: Optional[float]
    p5_ms: Optional[float]
    p95_ms: Optional[float]
    min_ms: Optional[float]
    max_ms: Optional[float]
    runs: int
    warmup_runs: int
    backend: str
    device: dict[str, Any]
    model: str = ""
    median_estimated: bool = False
    init_ms: Optional[float] = None
    first_inference_ms: Optional[float] = None
    op_profile: Optional[list[dict[str, Any]]] = None
    op_type_summary: Optional[list[dict[str, Any]]] = None
    samples_ms: Optional[list[float]] = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (None stays None -> JSON null)."""
        return dataclasses.asdict(self)


class LatencyBackend(ABC):
    """Measures a .tflite model on some device; `fingerprint()` identifies that device."""

    name: str = ""

    @abstractmethod
    def measure(self, model_path: str, threads: int = 1, warmup: int = PROTOCOL_WARMUP,
                runs: int = PROTOCOL_RUNS) -> LatencyResult:
        """Warm up, time `runs` inferences at batch 1, return their statistics."""

    @abstractmethod
    def fingerprint(self, threads: int = 1) -> dict[str, Any]:
        """Device identity that keys latency look-up tables (no model needed)."""


def get_backend(name: str, **kwargs: Any) -> LatencyBackend:
    """The backend called `name` ('host' or 'android'), built with `kwargs`."""
    target = _BACKENDS.get(name)
    if target is None:
        raise LatencyError(f"unknown latency backend {name!r}; choose one of: "
                           f"{', '.join(sorted(_BACKENDS))}")
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)(**kwargs)


def check_counts(threads: int, warmup: int, runs: int) -> None:
    """Refuses thread/run counts that cannot give a measurement."""
    for label, value in (("threads", threads), ("warmup", warmup), ("runs", runs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise LatencyError(f"{label} must be an integer >= 1 (got {value!r}); "
                               f"pass e.g. {label}=1")


def check_model(model_path: str) -> str:
    """Absolute path of an existing TFLite flatbuffer, else a clear error."""
    path = os.path.abspath(os.fspath(model_path))
    if not os.path.isfile(path):
        raise LatencyError(f"model file not found: {model_path}; pass the path of a "
                           f"converted .tflite file (see export/tflite.py)")
    with open(path, "rb") as f:
        head = f.read(8)
    # A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4..8.
    if head[4:8] != b"TFL3":
        raise LatencyError(f"{model_path} is not a TFLite model (no 'TFL3' identifier at "
                           f"byte 4); convert it first, e.g. with export.tflite."
                           f"export_verified_float")
    return path
