"""Host TFLite latency (LiteRT + XNNPACK, 1 thread, batch 1, raw outputs before NMS).

Exports each experiment's detector to float TFLite (verified against Keras) and times it
with the host backend of `latency` (10 warm-up + 50 timed runs, median).

    python benchmarks/host_latency.py [EXPERIMENT_OR_YAML ...] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT = ["mnasfpn_mobilenetv2_coco", "configs/experiments/mnasfpn_mobilenetv2_dm0.7_coco.yaml"]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="*", default=DEFAULT)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from official.core import task_factory

    from export.tflite import export_verified_float
    from latency import get_backend
    from mnas_tf.experiment import load_experiment
    from mnas_tf.modeling.factory import build_raw_detector

    backend = get_backend("host")
    print(f"{'model':<58}{'size MB':>8}{'median ms':>11}{'p5-p95 ms':>15}")
    for ref in args.experiments:
        params = load_experiment(ref)
        size = tuple(params.task.model.input_size[:2])
        model = task_factory.get_task(params.task).build_model()
        raw = build_raw_detector(model, size)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.tflite")
            info = export_verified_float(raw, path)
            r = backend.measure(path, threads=args.threads, warmup=10, runs=50)
        print(f"{ref:<58}{info['bytes'] / 1e6:8.1f}{r.median_ms:11.1f}"
              f"{r.p5_ms:7.1f}-{r.p95_ms:<7.1f}")
    print(f"device: {backend.fingerprint(args.threads)}")


if __name__ == "__main__":
    main()
