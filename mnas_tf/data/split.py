"""Deterministic search-train / search-val split of a COCO training set.

Architecture search must not tune on the images it reports on, so the search
reward is computed on images held out of the training set. The MnasFPN proxy
task holds out 7,000 of COCO train2017's 118,287 images::

    python -m mnas_tf.data split --annotations instances_train2017.json \\
        --val-size 7000 --seed 0 --out DIR

Membership depends only on (seed, image id): each image is ranked by
``sha256(f"{seed}:{image_id}")`` and the ``val_size`` lowest ranks form the
held-out set. The split is therefore independent of the order of the JSON,
stable when images are added elsewhere, and reproducible anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

from mnas_tf.data.coco import DataError, load_coco


def _num_val(val_size: int | float, num_images: int) -> int:
    """An int is a count; a float in (0, 1) is a fraction of the images."""
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float)):
        raise DataError(f"val_size must be a count or a fraction, got {val_size!r}")
    if isinstance(val_size, float):
        if not 0.0 < val_size < 1.0:
            raise DataError(f"fractional val_size must be in (0, 1), got {val_size}")
        count = round(val_size * num_images)
    else:
        count = val_size
    if not 1 <= count < num_images:
        raise DataError(
            f"val_size {val_size} gives {count} held-out images; it must leave at least "
            f"one image on each side of the split ({num_images} images in total)"
        )
    return count


def _rank(seed: int, image_id) -> bytes:
    return hashlib.sha256(f"{seed}:{image_id}".encode()).digest()


def split_coco(data: dict, val_size: int | float, seed: int = 0) -> tuple[dict, dict]:
    """Split a COCO dict into (train, val) by image id; see the module docstring.

    Images keep their relative order; annotations follow their image;
    categories and other top-level keys are copied to both halves.
    """
    images = data["images"]
    ids = [img["id"] for img in images]
    if len(set(ids)) != len(ids):
        raise DataError("image ids are not unique; validate the dataset first "
                        "(python -m mnas_tf.data prepare --skip-bad)")
    count = _num_val(val_size, len(images))
    val_ids = set(sorted(ids, key=lambda i: _rank(seed, i))[:count])

    halves = ({**data, "images": [], "annotations": []},
              {**data, "images": [], "annotations": []})
    for img in images:
        halves[img["id"] in val_ids]["images"].append(img)
    known = set(ids)
    for ann in data["annotations"]:
        if ann["image_id"] not in known:
            raise DataError(f"annotation id {ann.get('id')!r} refers to unknown image id "
                            f"{ann['image_id']!r}; validate the dataset first")
        halves[ann["image_id"] in val_ids]["annotations"].append(ann)
    return halves


def write_json_atomic(data: dict, path: str) -> None:
    """Write then rename, so readers never see a half-written file."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def split_file(
    annotations: str,
    out: str,
    val_size: int | float,
    seed: int = 0,
    names: tuple[str, str] = ("search_train", "search_val"),
) -> tuple[str, str]:
    """Split a COCO JSON file; writes OUT/<names[0]>.json and OUT/<names[1]>.json."""
    train, val = split_coco(load_coco(annotations), val_size, seed)
    os.makedirs(out, exist_ok=True)
    paths = tuple(os.path.join(os.path.abspath(out), f"{n}.json") for n in names)
    for half, path in zip((train, val), paths):
        write_json_atomic(half, path)
    return paths
