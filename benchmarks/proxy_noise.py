"""Where the proxy's seed noise comes from: the evaluation set, or training?

Trains architectures under the search config's proxy (the ones `search.proxycheck` picks,
the same seeds) and scores each trained child twice: COCO AP on the whole search-val, and
on many random halves of it. A half's AP varies around the whole's with the standard error
the whole set itself would have under a fresh draw of images (sampling half without
replacement: var = s^2/(N/2) * (1 - 1/2) = s^2/N), so the spread over halves estimates the
evaluation-set noise of one score. When it is as large as the seed std, a bigger
search-val (or a less noisy metric) is the fix; when it is much smaller, training is.

    python benchmarks/proxy_noise.py [--config C] [--set KEY=VALUE ...] [--archs 3]
        [--seeds 0 1] [--halves 40] [--out runs/proxy_noise.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mnas_tf import console  # noqa: E402  (first: quiets TensorFlow before it loads)


def coco_score(gt, detections: list, image_ids, metric_index: int) -> float:
    """COCO stat `metric_index` (0 AP, 1 AP50, ...) of `detections` on `image_ids`."""
    from pycocotools.cocoeval import COCOeval
    if not detections:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(detections)
        e = COCOeval(gt, dt, "bbox")
        e.params.imgIds = list(image_ids)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return max(0.0, float(e.stats[metric_index]))


def split_half_se(gt, detections: list, metric_index: int, halves: int,
                  seed: int = 0) -> tuple[float, float]:
    """(score on all images, std of the score over `halves` random halves)."""
    ids = sorted(gt.getImgIds())
    rng = np.random.default_rng(seed)
    full = coco_score(gt, detections, ids, metric_index)
    scores = [coco_score(gt, detections, rng.permutation(ids)[:len(ids) // 2].tolist(),
                         metric_index) for _ in range(halves)]
    return full, float(np.std(scores))


def detections_of(engine, model) -> list:
    """The model's search-val detections as COCO results (Model Garden's conversion)."""
    import tensorflow as tf
    from official.vision.evaluation import coco_utils

    from mnas_tf.proxy import _PerModelStep
    task = engine.task
    step = tf.function(_PerModelStep(task.validation_step, model), autograph=False)
    predictions: dict = {}
    for batch in engine._val_batches:  # pylint: disable=protected-access
        outputs = step(batch)[task.coco_metric.name][1]
        batch = {key: outputs[key].numpy() for key in (
            "source_id", "detection_boxes", "detection_scores", "detection_classes",
            "num_detections", "image_info")}
        # back to original-image coordinates, as COCOEvaluator.update_state does
        batch["detection_boxes"] = batch["detection_boxes"].astype(np.float32) / np.tile(
            batch["image_info"][:, 2:3, :], (1, 1, 2))
        for key, value in batch.items():
            predictions.setdefault(key, []).append(value)
    return coco_utils.convert_predictions_to_coco_annotations(predictions)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--archs", type=int, default=3, help="sampled architectures (plus "
                        "the published cell), as search.proxycheck picks them")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--halves", type=int, default=40)
    parser.add_argument("--out", default="runs/proxy_noise.json")
    args = parser.parse_args(argv)
    console.setup(False)
    from official.vision.evaluation.coco_utils import COCOWrapper

    from mnas_tf.proxy import ProxyEngine
    from mnas_tf.proxy_result import METRICS
    from search.config import load_config
    from search.data import resolve_data
    from search.fidelity import seed_noise
    from search.proxycheck import pick_architectures
    from search.spaces import get_space
    config = resolve_data(load_config(args.config, sets=args.set), progress=False)
    space = get_space(config.space, config.space_overrides)
    metric_index = list(METRICS).index(config.proxy.metric)
    engine = ProxyEngine(config.proxy)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCOWrapper(eval_type="box", annotation_file=engine.params.task.annotation_file)
    rows = []
    for name, arch in pick_architectures(space, args.archs, config.seed):
        for seed in args.seeds:
            start = time.perf_counter()
            kept = {}
            with contextlib.redirect_stdout(io.StringIO()):
                result = engine.run(space.spec(arch), seed=seed,
                                    on_trained=lambda model: kept.update(model=model))
            full, se = split_half_se(gt, detections_of(engine, kept["model"]), metric_index,
                                     args.halves)
            if abs(full - result.score) > 1e-5:  # the same detections, scored the same way
                raise SystemExit(f"error: re-scored {full} differs from the proxy's "
                                 f"{result.score}")
            rows.append({"name": name, "seed": seed, "score": result.score, "full": full,
                         "eval_se": se, "seconds": round(time.perf_counter() - start, 1)})
            print(json.dumps(rows[-1]), flush=True)
    by_arch: dict = {}
    for r in rows:
        by_arch.setdefault(r["name"], []).append(r["full"])
    noise = seed_noise(list(by_arch.values())) if len(args.seeds) > 1 else {}
    summary = {"metric": config.proxy.metric, "images": len(gt.getImgIds()),
               "train_steps": config.proxy.train_steps,
               "eval_se_mean": float(np.mean([r["eval_se"] for r in rows])), **noise,
               "runs": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"{config.proxy.metric} on {summary['images']} search-val images after "
          f"{summary['train_steps']} steps: evaluation-set SE {summary['eval_se_mean']:.4f}"
          + (f"; seed std {noise['seed_std']:.4f}, between-arch std "
             f"{noise['between_arch_std']:.4f}" if noise else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
