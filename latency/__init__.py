"""Latency models: connectivity-aware lookup tables and on-device (adb) TFLite benchmarking.

Measuring (the MnasFPN convention: TFLite, 1 thread, batch 1, model output before NMS):

    python -m latency.benchmark M.tflite [--backend host|android] [--serial S] [--json]

or from Python `get_backend("host").measure("M.tflite")` -> `LatencyResult`. Backends:
`host` (LiteRT + XNNPACK on this CPU, for CI) and `android` (TFLite's benchmark_model on a
phone over adb, pinned to the big cores). `backend.fingerprint()` identifies the device
for LUT keys. Every failure is a `LatencyError` whose message names the problem and fix.
"""

from latency.errors import AdbError, BenchmarkParseError, LatencyError
from latency.measure import LatencyBackend, LatencyResult, get_backend

__all__ = ["AdbError", "BenchmarkParseError", "LatencyBackend", "LatencyError",
           "LatencyResult", "get_backend"]
