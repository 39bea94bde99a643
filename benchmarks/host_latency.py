"""Host TFLite latency (LiteRT + XNNPACK, 1 thread, batch 1, raw outputs before NMS).

Exports each experiment's detector to TFLite (float32 verified against Keras; int8 full-
integer, calibrated on random images, which sets ranges but not speed) and times it with
the host backend of `latency` (10 warm-up + 50 timed runs, median).

    python benchmarks/host_latency.py [EXPERIMENT_OR_YAML ...] [--threads 1]
        [--quant float32 int8]
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
    parser.add_argument("--quant", nargs="+", default=["float32", "int8"],
                        choices=["float32", "int8"])
    args = parser.parse_args()
    import numpy as np
    from official.core import task_factory

    from export.tflite import convert, export_verified_float, verify
    from latency import get_backend
    from mnas_tf.experiment import load_experiment
    from mnas_tf.modeling.factory import build_raw_detector

    backend = get_backend("host")
    print(f"{'model':<58}{'quant':>8}{'size MB':>8}{'median ms':>11}{'p5-p95 ms':>15}")
    for ref in args.experiments:
        params = load_experiment(ref)
        size = tuple(params.task.model.input_size[:2])
        model = task_factory.get_task(params.task).build_model()
        raw = build_raw_detector(model, size)

        def calibration():
            rng = np.random.default_rng(0)
            for _ in range(8):
                yield [rng.uniform(-1, 1, (1, *size, 3)).astype(np.float32)]
        for quant in args.quant:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.tflite")
                if quant == "float32":
                    size_bytes = export_verified_float(raw, path)["bytes"]
                else:
                    flatbuffer = convert(raw, quant, calibration)
                    verify(flatbuffer, quant, None, nms=False)
                    size_bytes = len(flatbuffer)
                    with open(path, "wb") as f:
                        f.write(flatbuffer)
                r = backend.measure(path, threads=args.threads, warmup=10, runs=50)
            print(f"{ref:<58}{quant:>8}{size_bytes / 1e6:8.1f}{r.median_ms:11.1f}"
                  f"{r.p5_ms:7.1f}-{r.p95_ms:<7.1f}", flush=True)
    print(f"device: {backend.fingerprint(args.threads)}")


if __name__ == "__main__":
    main()
