"""Latency look-up table: time to build, prediction speed, and fidelity on the host.

Builds the host table for the MnasFPN space at 320x320 (MobileNetV2, 1 thread) in a
fresh directory unless --table-dir points at an existing one, then times `predict` over
10,000 sampled architectures in one process (cold: every unit priced for the first time;
warm: the search-loop case), then measures --n held-out architectures end to end and
prints R^2, MAPE, the share within +-10% and Kendall tau.

    python benchmarks/latency_lut.py [--table-dir D] [--n 50] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table-dir")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--predictions", type=int, default=10_000)
    args = parser.parse_args()
    from latency import lut
    from latency.measure import get_backend
    from latency.table import LatencyPredictor, LatencyTable

    table_dir = args.table_dir or tempfile.mkdtemp(prefix="lut-")
    params, shape = lut.load_shape(lut.DEFAULT_EXPERIMENT, None)
    backend = get_backend("host")
    table = LatencyTable.for_device(backend.fingerprint(1), table_dir)
    built = lut.build(table, params, shape, backend, threads=1)
    print(f"build: {built['measured_now']} ops measured now, {built['entries']} entries, "
          f"{built['seconds']:.0f} s (incl. 3 calibration models); table {built['table']}")

    specs = lut.sample_architectures(args.predictions, seed=12345)
    for label in ("cold", "warm"):
        predictor = LatencyPredictor(table, shape) if label == "cold" else predictor
        start = time.perf_counter()
        for spec in specs:
            predictor.predict(spec)
        rate = len(specs) / (time.perf_counter() - start)
        print(f"prediction speed ({label}): {rate:,.0f} architectures/s")

    if args.n:
        result = lut.fidelity(table, params, shape, backend, 1, args.n, args.seed)
        print(f"fidelity on {result['n']} held-out architectures (seed {args.seed}): "
              f"R^2 {result['r2']:.4f}, MAPE {result['mape']:.2f}%, within +-10% "
              f"{result['within_10pct']:.1f}%, Kendall tau {result['kendall_tau']:.3f}; "
              f"measured {min(result['measured_ms']):.1f}-{max(result['measured_ms']):.1f} ms")
    print(f"device: {backend.fingerprint(1)}")


if __name__ == "__main__":
    main()
