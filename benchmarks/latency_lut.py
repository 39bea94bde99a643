"""Latency look-up table: time to build, prediction speed, and fidelity on the host.

Uses the host table for the MnasFPN space at 320x320 (MobileNetV2, --threads, --quant) in
--table-dir, building it first unless it is ready (a fresh directory by default), then
times `predict` over --predictions sampled architectures in one process, today's
predictor and the previous one side by side and alternating (cold: every unit priced for
the first time; warm: the search-loop case), checks they agree, then measures --n
held-out architectures end to end and prints both calibrations' fidelity and the load.

    python benchmarks/latency_lut.py [--table-dir D] [--n 50] [--seed 0] [--quant int8]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _rate(predictor, specs) -> float:
    start = time.perf_counter()
    for spec in specs:
        predictor.predict(spec)
    return len(specs) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table-dir")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quant", choices=("float32", "int8"), default="float32")
    parser.add_argument("--predictions", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="alternating timing rounds")
    args = parser.parse_args()
    from latency import lut
    from latency.load import LoadMonitor, read_local
    from latency.measure import get_backend
    from latency.table import LatencyPredictor
    from mnas_tf.spaces import MnasFPNSpace

    table_dir = args.table_dir or tempfile.mkdtemp(prefix="lut-")
    backend = get_backend("host")
    table = lut.device_table(backend, args.threads, table_dir, args.quant)
    params, shape = lut.load_shape(lut.DEFAULT_EXPERIMENT, None, args.quant)
    print(table.describe())
    if not lut.table_ready(table, shape, MnasFPNSpace()):
        built = lut.build(table, params, shape, backend, args.threads,
                          monitor=lut.load_monitor(backend))
        print(f"build: {built['measured_now']} ops measured now in {built['rounds']} rounds, "
              f"{built['entries']} entries, {built['seconds']:.0f} s (incl. "
              f"{built['calibration']['n']} calibration models); load {built['load']}")

    specs = lut.sample_architectures(args.predictions, seed=12345)
    monitor = LoadMonitor(read_local)
    monitor.start()
    rates = {"today (walk + per-class factors)": [], "previous (head_cells + constant)": []}
    for _ in range(args.repeats):
        for label in rates:
            fast = label.startswith("today")
            predictor = LatencyPredictor(table, shape, fast=fast,
                                         calibration="fitted" if fast else "constant")
            cold = _rate(predictor, specs)
            rates[label].append((cold, _rate(predictor, specs)))
    load = monitor.sample()
    for label, values in rates.items():
        cold, warm = max(v[0] for v in values), max(v[1] for v in values)
        print(f"prediction speed, {label}: {warm:,.0f} architectures/s warm, {cold:,.0f}/s "
              f"cold (best of {args.repeats})")
    today = LatencyPredictor(table, shape, calibration="constant")
    previous = LatencyPredictor(table, shape, fast=False, calibration="constant")
    worst = max(abs(today.predict(s).total_ms / previous.predict(s).total_ms - 1)
                for s in specs[:2000])
    print(f"same sums: largest relative difference {worst:.1e} on 2000 architectures; "
          f"other processes used {load.other_cores:.2f} cores meanwhile (loadavg "
          f"{load.loadavg_1m:.2f})")

    if args.n:
        result = lut.fidelity(table, params, shape, backend, args.threads, args.n, args.seed,
                              monitor=lut.load_monitor(backend))
        for label, m in (("per-class calibration", result), ("sum + constant", result["old"])):
            print(f"fidelity, {label}, {m['n']} held-out architectures (seed {args.seed}): "
                  f"R^2 {m['r2']:.4f}, MAPE {m['mape']:.2f}%, within +-5% "
                  f"{m['within_5pct']:.1f}%, within +-10% {m['within_10pct']:.1f}%, Kendall "
                  f"tau {m['kendall_tau']:.3f}, Spearman {m['spearman']:.3f}, worst "
                  f"{m['worst_error_pct']:+.1f}%")
        print(f"measured {min(result['measured_ms']):.1f}-{max(result['measured_ms']):.1f} ms; "
              f"load {json.dumps(result['load'])}")


if __name__ == "__main__":
    main()
