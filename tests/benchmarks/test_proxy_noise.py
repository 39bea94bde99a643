"""The evaluation-set noise estimate of benchmarks/proxy_noise.py on a case with a known
answer: a detector that finds exactly half of 20 one-object images."""

import numpy as np
import pytest
from pycocotools.coco import COCO

from benchmarks.proxy_noise import split_half_se


def _ground_truth(n):
    gt = COCO()
    gt.dataset = {"images": [{"id": i, "width": 100, "height": 100} for i in range(1, n + 1)],
                  "annotations": [{"id": i, "image_id": i, "category_id": 1,
                                   "bbox": [10, 10, 40, 40], "area": 1600, "iscrowd": 0}
                                  for i in range(1, n + 1)],
                  "categories": [{"id": 1, "name": "thing"}]}
    gt.createIndex()
    return gt


def _hit(i):
    return {"image_id": i, "category_id": 1, "bbox": [10, 10, 40, 40], "score": 0.9}


def test_perfect_detector_has_no_evaluation_noise():
    gt = _ground_truth(20)
    full, se = split_half_se(gt, [_hit(i) for i in range(1, 21)], 1, halves=10)
    assert full == pytest.approx(1.0) and se == pytest.approx(0.0, abs=1e-9)


def test_half_detector_matches_the_sampling_error_of_its_recall():
    gt = _ground_truth(20)
    full, se = split_half_se(gt, [_hit(i) for i in range(1, 11)], 1, halves=200)
    assert full == pytest.approx(0.5, abs=0.01)  # precision 1 up to recall 0.5
    # a half holds K ~ hypergeometric(20, 10, 10) found images: std of K/10 is
    # sqrt(10 * 0.5 * 0.5 * 10 / 19) / 10 = 0.115, the binomial SE of the whole set's recall
    assert se == pytest.approx(np.sqrt(10 * 0.25 * 10 / 19) / 10, rel=0.25)
