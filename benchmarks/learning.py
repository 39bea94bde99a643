"""Learning from scratch on the default synthetic dataset, on this CPU, in a fixed budget.

Trains the published MnasFPN (320x320, experiment `mnasfpn_synthetic`) from scratch with
Model Garden's trainer through `python -m mnas_tf.train`, evaluates COCO metrics on the
held-out val split, and prints AP50 and the wall time.

    python benchmarks/learning.py [--steps 200] [--model-dir runs/learning]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--model-dir", default="runs/learning")
    args = parser.parse_args()
    from mnas_tf import train
    shutil.rmtree(args.model_dir, ignore_errors=True)
    loop = 20 if args.steps % 20 == 0 else args.steps
    start = time.perf_counter()
    code = train.main([
        "--experiment", "mnasfpn_synthetic", "--model-dir", args.model_dir,
        "--params-override",
        f"trainer.train_steps={args.steps},trainer.validation_interval={args.steps},"
        f"trainer.steps_per_loop={loop},trainer.summary_interval={loop},"
        f"trainer.checkpoint_interval={loop},task.train_data.global_batch_size={args.batch}"])
    wall = time.perf_counter() - start
    metrics = json.load(open(os.path.join(args.model_dir, "metrics.json"))) if code == 0 else {}
    print(f"steps {args.steps} x batch {args.batch} at 320x320 in {wall / 60:.1f} min: "
          f"AP50 {metrics.get('AP50', float('nan')):.3f}, AP {metrics.get('AP', float('nan')):.3f}"
          f", APs/APm/APl {metrics.get('APs', 0):.3f}/{metrics.get('APm', 0):.3f}/"
          f"{metrics.get('APl', 0):.3f}")


if __name__ == "__main__":
    main()
