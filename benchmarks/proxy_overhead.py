"""Per-child overhead of the proxy-task API (mnas_tf.proxy.train_and_evaluate).

Runs N children on the default synthetic dataset and splits each child's wall time into
model build, graph trace (first chunk minus the steady per-step cost), training and
evaluation. Engine start-up (config, input pipelines, cached validation batches) is paid
once per process and printed separately.

    python benchmarks/proxy_overhead.py [--children 3] [--steps 50] [--batch 8] [--size 320]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=320)
    args = parser.parse_args()
    from mnas_tf.proxy import ProxyConfig, ProxyEngine

    start = time.perf_counter()
    engine = ProxyEngine(ProxyConfig(train_steps=args.steps, batch_size=args.batch,
                                     input_size=args.size, steps_per_check=10))
    print(f"engine start-up (once per process): {time.perf_counter() - start:.1f} s")
    archs = ["mnasfpn", "mnasfpn_dm0.7"]
    print(f"{'child':<16}{'build':>7}{'trace':>7}{'train':>8}{'eval':>7}{'total':>8}"
          f"{'overhead':>10}")
    for i in range(args.children):
        r = engine.run(archs[i % len(archs)], seed=i)
        t = r.timings
        steady = (t["train_s"] - t["first_chunk_s"]) / max(1, r.steps - 10)
        trace = t["first_chunk_s"] - 10 * steady
        train = t["train_s"] - trace
        overhead = t["build_s"] + trace + t["eval_s"]
        print(f"{archs[i % len(archs)]:<16}{t['build_s']:7.1f}{trace:7.1f}{train:8.1f}"
              f"{t['eval_s']:7.1f}{r.wall_time_s:8.1f}{overhead / r.wall_time_s:9.0%}"
              f"   ({r.status}, {steady * 1000:.0f} ms/step)")


if __name__ == "__main__":
    main()
