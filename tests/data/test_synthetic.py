"""mnas_tf.data.synthetic: deterministic, multi-scale, occluded, cached."""

import glob
import json
import os
import threading
import time

import numpy as np
import pytest

from mnas_tf.data import (DatasetPaths, SyntheticConfig, default_dataset, generate,
                          load_coco, read_examples, validate_coco)
from mnas_tf.data import synthetic

SMALL, LARGE = 32 ** 2, 96 ** 2
TINY = SyntheticConfig(num_train=24, num_val=8, image_size=128)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """64 images at 320x320, generated once for the property tests."""
    out = tmp_path_factory.mktemp("synth64")
    config = SyntheticConfig(num_train=56, num_val=8, image_size=320, seed=5)
    train_json, val_json = generate(config, str(out), progress=False)
    return out, train_json, val_json


def test_layout_and_valid_coco(generated):
    out, train_json, val_json = generated
    assert train_json == str(out / "annotations" / "train.json")
    assert val_json == str(out / "annotations" / "val.json")
    for split, path, count in (("train", train_json, 56), ("val", val_json, 8)):
        data = load_coco(path)
        assert len(data["images"]) == count
        assert [c["id"] for c in data["categories"]] == [1, 2, 3, 4, 5, 6]
        assert data["images"][0] == {"id": 1, "file_name": "000001.jpg",
                                     "width": 320, "height": 320}
        clean, skipped = validate_coco(data, str(out / "images" / split), json_path=path)
        assert not skipped and clean["annotations"] == data["annotations"]
        for ann in data["annotations"]:
            x, y, w, h = ann["bbox"]
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 320 and y + h <= 320
            assert 0 < ann["area"] <= w * h and ann["iscrowd"] == 0


def test_all_three_coco_scales_in_quantity(generated):
    _, train_json, val_json = generated
    areas = [a["area"] for p in (train_json, val_json) for a in load_coco(p)["annotations"]]
    small = sum(a < SMALL for a in areas)
    large = sum(a > LARGE for a in areas)
    medium = len(areas) - small - large
    assert len(areas) >= 150
    for count in (small, medium, large):
        assert count >= 0.2 * len(areas), (small, medium, large)


def test_every_class_appears(generated):
    _, train_json, _ = generated
    classes = {a["category_id"] for a in load_coco(train_json)["annotations"]}
    assert classes == {1, 2, 3, 4, 5, 6}


def test_objects_occlude_each_other(generated):
    _, train_json, _ = generated
    data = load_coco(train_json)
    overlapping = 0
    by_image = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann["bbox"])
    for boxes in by_image.values():
        b = np.array(boxes, dtype=float)
        x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
        iw = np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None])
        ih = np.minimum(y1[:, None], y1[None]) - np.maximum(y0[:, None], y0[None])
        inter = (np.clip(iw, 0, None) * np.clip(ih, 0, None))[np.triu_indices(len(b), 1)]
        overlapping += int((inter > 0).sum())
    assert overlapping >= 10
    # Occlusion cuts some objects below their nominal shape: visible area < box area.
    fill = [a["area"] / (a["bbox"][2] * a["bbox"][3]) for a in data["annotations"]]
    assert min(fill) < 0.45


def test_backgrounds_are_textured(generated):
    out, _, _ = generated
    from PIL import Image

    for name in ("000001.jpg", "000002.jpg", "000003.jpg"):
        pixels = np.asarray(Image.open(out / "images" / "train" / name), dtype=np.float32)
        assert pixels.std(axis=(0, 1)).max() > 10  # not a flat colour


def test_same_config_same_bytes_other_seed_differs(tmp_path):
    config = SyntheticConfig(num_train=6, num_val=3, image_size=96, seed=1)
    a = generate(config, str(tmp_path / "a"), progress=False)
    b = generate(config, str(tmp_path / "b"), progress=False, processes=2)
    for pa, pb in zip(a, b):
        assert _read(pa) == _read(pb)
    for rel in ("images/train/000001.jpg", "images/train/000006.jpg", "images/val/000002.jpg"):
        assert _read(tmp_path / "a" / rel) == _read(tmp_path / "b" / rel)
    other = generate(SyntheticConfig(num_train=6, num_val=3, image_size=96, seed=2),
                     str(tmp_path / "c"), progress=False)
    assert _read(other[0]) != _read(a[0])
    first_train = _read(tmp_path / "a/images/train/000001.jpg")
    assert _read(tmp_path / "c/images/train/000001.jpg") != first_train
    # train and val are different images, not the same draws
    assert _read(tmp_path / "a/images/val/000001.jpg") != first_train


def test_config_key_and_validation():
    assert SyntheticConfig().key() == SyntheticConfig().key()
    assert len(SyntheticConfig().key()) == 12
    assert SyntheticConfig(seed=1).key() != SyntheticConfig().key()
    for bad in ({"num_train": 1}, {"image_size": 32}, {"seed": -1}, {"max_objects": 0}):
        with pytest.raises(ValueError):
            SyntheticConfig(**bad)


def test_default_dataset_builds_once_and_caches(tmp_path, monkeypatch):
    builds = []
    real_build = synthetic._build
    monkeypatch.setattr(synthetic, "_build", lambda *a: builds.append(1) or real_build(*a))

    # Two concurrent callers: the lock makes the second wait and reuse.
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        default_dataset(TINY, root=str(tmp_path), progress=False))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(results) == 2 and results[0] == results[1]
    paths = results[0]
    assert isinstance(paths, DatasetPaths)
    assert paths.root == str(tmp_path / f"synthetic-{TINY.key()}")
    assert (paths.num_classes, paths.image_size) == (7, 128)

    counts = {}
    for split in ("train", "val", "search_train", "search_val"):
        records = getattr(paths, f"{split}_records")
        annotations = load_coco(getattr(paths, f"{split}_annotations"))
        assert glob.glob(records), split
        examples = read_examples(records)
        assert sorted(int(e["source_id"]) for e in examples) == sorted(
            img["id"] for img in annotations["images"])
        counts[split] = len(examples)
    assert counts == {"train": 24, "val": 8, "search_train": 19, "search_val": 5}
    search_ids = [{img["id"] for img in load_coco(getattr(paths, f"search_{s}_annotations"))
                   ["images"]} for s in ("train", "val")]
    assert not search_ids[0] & search_ids[1]

    manifest = os.path.join(paths.root, "manifest.json")
    mtime = os.stat(manifest).st_mtime_ns
    start = time.perf_counter()
    again = default_dataset(TINY, root=str(tmp_path), progress=False)
    assert time.perf_counter() - start < 0.5
    assert again == paths and os.stat(manifest).st_mtime_ns == mtime and len(builds) == 1

    os.remove(manifest)  # as if the first build had been killed
    rebuilt = default_dataset(TINY, root=str(tmp_path), progress=False)
    assert rebuilt == paths and len(builds) == 2 and os.path.exists(manifest)


def test_default_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MNAS_TF_DATA", str(tmp_path / "env-root"))
    assert synthetic.default_root() == str(tmp_path / "env-root")
    monkeypatch.delenv("MNAS_TF_DATA")
    assert synthetic.default_root().endswith(os.path.join(".cache", "mnas_tf", "datasets"))


def test_cli_synth_prints_paths(tmp_path, capsys):
    from mnas_tf.data.__main__ import main

    args = ["synth", "--out", str(tmp_path), "--num-train", "8", "--num-val", "2",
            "--image-size", "64", "--seed", "3"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["num_classes"] == 7 and printed["image_size"] == 64
    assert os.path.exists(printed["val_annotations"])
    assert main(["synth", "--out", str(tmp_path), "--num-train", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
