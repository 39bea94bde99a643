"""CLI: `python -m latency.benchmark MODEL.tflite [--backend host|android] ... [--json]`.

Prints the latency figures of one model (a short table, or one JSON object with --json).
Bad input and device problems end with one `error: ...` line on stderr and exit status 2.
The CLI holds the measurement protocol (>= 10 warm-up runs, >= 50 timed runs, 1 thread by
default: the MnasFPN paper's single-thread, batch-1 convention); the Python API allows
smaller counts for tests.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Optional, Sequence

from mnas_tf import console  # first: quiets TensorFlow and LiteRT before they load
from latency.errors import LatencyError
from latency.measure import PROTOCOL_RUNS, PROTOCOL_WARMUP, LatencyResult, get_backend

_ANDROID_ONLY = ("serial", "benchmark_binary", "remote_binary", "cpu_mask")


class _UsageError(Exception):
    """argparse's complaint, re-routed so main() can print it as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m latency.benchmark",
                description="Measure the inference latency of a .tflite model "
                            "(LiteRT on this host, or benchmark_model on a phone over adb).")
    p.add_argument("model", help="path of the .tflite model")
    p.add_argument("--backend", choices=("host", "android"), default="host")
    p.add_argument("--serial", help="adb serial of the phone (needed when several are "
                                    "connected)")
    p.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    p.add_argument("--warmup", type=int, default=PROTOCOL_WARMUP,
                   help=f"warm-up runs (>= {PROTOCOL_WARMUP})")
    p.add_argument("--runs", type=int, default=PROTOCOL_RUNS,
                   help=f"timed runs (>= {PROTOCOL_RUNS})")
    p.add_argument("--benchmark-binary", metavar="PATH",
                   help="host path of TFLite's android_aarch64_benchmark_model to push")
    p.add_argument("--remote-binary", metavar="PATH",
                   help="benchmark_model path on the phone (default "
                        "/data/local/tmp/benchmark_model)")
    p.add_argument("--op-profiling", action="store_true",
                   help="also collect per-op timings (android; separate profiled run)")
    p.add_argument("--cpu-mask", metavar="HEX",
                   help="taskset mask to use instead of the detected big cores")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds one benchmark_model run may take (android)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _check_args(args: argparse.Namespace) -> None:
    if args.threads < 1:
        raise LatencyError(f"--threads must be >= 1 (got {args.threads}); the paper's "
                           f"setting is --threads 1")
    if args.warmup < PROTOCOL_WARMUP:
        raise LatencyError(f"--warmup {args.warmup} is below the protocol minimum of "
                           f"{PROTOCOL_WARMUP} warm-up runs; use --warmup {PROTOCOL_WARMUP} "
                           f"or more")
    if args.runs < PROTOCOL_RUNS:
        raise LatencyError(f"--runs {args.runs} is below the protocol minimum of "
                           f"{PROTOCOL_RUNS} timed runs; use --runs {PROTOCOL_RUNS} or more")
    if args.timeout <= 0:
        raise LatencyError(f"--timeout must be > 0 seconds (got {args.timeout})")
    if args.backend == "host":
        for name in _ANDROID_ONLY:
            if getattr(args, name) is not None:
                raise LatencyError(f"--{name.replace('_', '-')} only applies to --backend "
                                   f"android")
        if args.op_profiling:
            raise LatencyError("--op-profiling needs --backend android (LiteRT's Python "
                               "interpreter has no per-op profiler)")


def _backend_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if args.backend == "host":
        return {}
    return {"serial": args.serial, "benchmark_binary": args.benchmark_binary,
            "remote_binary": args.remote_binary, "op_profiling": args.op_profiling,
            "cpu_mask": args.cpu_mask, "timeout_s": args.timeout}


def _ms(value: Optional[float]) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f} ms" if value >= 1 else f"{value:.4g} ms"


def _describe_device(r: LatencyResult) -> str:
    d = r.device
    if r.backend == "android":
        parts = [f"{d.get('manufacturer') or ''} {d.get('model') or '?'}".strip(),
                 f"Android {d.get('android_version') or '?'}",
                 f"cores {d.get('big_cores')} (taskset {d.get('cpu_mask')})",
                 f"governor {d.get('governor') or '?'}",
                 f"binary sha256 {(d.get('binary_sha256') or '?')[:12]}"]
    else:
        parts = [d.get("cpu_model", "?"), d.get("runtime", "?"),
                 "xnnpack" if d.get("xnnpack_applied") else "no xnnpack"]
    parts.append(f"{d.get('threads')} thread{'s' if d.get('threads') != 1 else ''}")
    return ", ".join(parts)


def format_table(r: LatencyResult) -> str:
    """The human-readable summary."""
    median = _ms(r.median_ms) + ("  (estimated = mean: this benchmark_model prints no "
                                 "median)" if r.median_estimated else "")
    rows = [("model", r.model), ("backend", r.backend), ("device", _describe_device(r)),
            ("median", median), ("mean", _ms(r.mean_ms)), ("std", _ms(r.std_ms)),
            ("p5", _ms(r.p5_ms)), ("p95", _ms(r.p95_ms)),
            ("min / max", f"{_ms(r.min_ms)} / {_ms(r.max_ms)}"),
            ("runs", f"{r.runs} timed after {r.warmup_runs} warm-up")]
    lines = [f"{k:<10} {v}" for k, v in rows]
    if r.op_profile:
        lines.append("slowest ops (profiled run):")
        for op in sorted(r.op_profile, key=lambda o: -o.get("avg_ms", 0.0))[:10]:
            lines.append(f"  {op.get('avg_ms', 0.0):8.3f} ms  {op.get('percent', 0.0):6.2f}%  "
                         f"{op.get('node_type', '?')}  {op.get('name', '')}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the CLI; returns the exit status (0 ok, 2 error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(console.cli(argv))
        _check_args(args)
        backend = get_backend(args.backend, **_backend_kwargs(args))
        result = backend.measure(args.model, threads=args.threads, warmup=args.warmup,
                                 runs=args.runs)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except _UsageError as e:
        print(f"error: {e} (see --help)", file=sys.stderr)
        return 2
    except LatencyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
