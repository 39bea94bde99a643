"""A user's own COCO dataset (annotations JSON + image folder), prepared once and cached.

`user_dataset(train_annotations, train_images, val_annotations, val_images)` validates the
data (one-line `DataError`s: file missing, not COCO, image missing, no annotations), writes
TFRecords with `prepare` and, without a validation set, holds search-val out of train with
`split_coco` (the paper's search-train / search-val split). The result is cached under
``$MNAS_TF_DATA/user-KEY`` (see `synthetic.default_root`); KEY hashes the annotation files'
bytes and each listed image's name and size, the split fraction and seed, so a second call
on the same data reads ``manifest.json`` (written last) and prepares nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from typing import Optional

from mnas_tf.data.coco import DataError, load_coco, validate_coco
from mnas_tf.data.split import split_coco, write_json_atomic

VERSION = 1
MANIFEST = "manifest.json"


@dataclasses.dataclass(frozen=True)
class UserDataset:
    """A prepared user dataset: what the search trains on and scores on."""

    root: str
    train_records: str  # glob of the TFRecord shards the search trains on
    train_annotations: str
    val_records: str  # search-val: the given val set, or held out of train
    val_annotations: str
    num_classes: int  # max category id + 1 (Model Garden's model.num_classes)
    category_names: tuple
    held_out: bool  # val was held out of train


def _check_dir(images: str, what: str) -> None:
    if not isinstance(images, str) or not images:
        raise DataError(f"{what}: an image folder is needed")
    if not os.path.isdir(images):
        raise DataError(f"{images}: image folder not found ({what})")


def _load(annotations: str, images: str, what: str) -> dict:
    if not isinstance(annotations, str) or not annotations:
        raise DataError(f"{what}: an annotations file (COCO JSON) is needed")
    _check_dir(images, what)
    data = load_coco(annotations)
    clean, _ = validate_coco(data, images, skip_bad=False, json_path=annotations)
    if not clean["images"]:
        raise DataError(f"{annotations}: no images ({what})")
    if not clean["annotations"]:
        raise DataError(f"{annotations}: no annotations: a detector trained on it learns "
                        f"nothing ({what})")
    if not clean["categories"]:
        raise DataError(f"{annotations}: no categories ({what})")
    return clean


def _key(parts: list, val_fraction: float, seed: int) -> str:
    h = hashlib.sha256(json.dumps({"version": VERSION, "val_fraction": val_fraction,
                                   "seed": seed}, sort_keys=True).encode())
    for annotations, images, clean in parts:
        with open(annotations, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
        for image in clean["images"]:
            path = os.path.join(images, image["file_name"])
            h.update(f"{image['file_name']}:{os.path.getsize(path)};".encode())
    return h.hexdigest()[:16]


def _read_manifest(directory: str) -> Optional[UserDataset]:
    try:
        with open(os.path.join(directory, MANIFEST), encoding="utf-8") as f:
            m = json.load(f)
        paths = {k: os.path.join(directory, m[k]) for k in (
            "train_records", "train_annotations", "val_records", "val_annotations")}
        data = UserDataset(root=directory, num_classes=int(m["num_classes"]),
                           category_names=tuple(m["category_names"]),
                           held_out=bool(m["held_out"]), **paths)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not all(os.path.isfile(p) for p in (data.train_annotations, data.val_annotations)):
        return None
    return data


def user_dataset(train_annotations: str, train_images: str,
                 val_annotations: Optional[str] = None, val_images: Optional[str] = None,
                 val_fraction: float = 0.2, seed: int = 0, root: Optional[str] = None,
                 progress: bool = True) -> UserDataset:
    """The prepared, cached dataset; `DataError` (one line) when the data is bad."""
    from mnas_tf.data.synthetic import cache_lock, default_root

    if (val_annotations is None) != (val_images is None):
        raise DataError("data.val needs both annotations and images (or neither: search-val "
                        "is then held out of train)")
    train = _load(train_annotations, train_images, "data.train")
    parts = [(train_annotations, train_images, train)]
    if val_annotations is not None:
        val = _load(val_annotations, val_images, "data.val")
        parts.append((val_annotations, val_images, val))
    root = os.path.abspath(root or default_root())
    directory = os.path.join(root, f"user-{_key(parts, val_fraction, seed)}")
    found = _read_manifest(directory)
    if found is not None:
        return found
    os.makedirs(root, exist_ok=True)
    with cache_lock(root):
        found = _read_manifest(directory)
        if found is None:
            _build(directory, train, train_images, parts, val_fraction, seed, progress)
            found = _read_manifest(directory)
    if found is None:
        raise DataError(f"{directory}: preparing the dataset finished without a manifest")
    return found


def _build(directory: str, train: dict, train_images: str, parts: list,
           val_fraction: float, seed: int, progress: bool) -> None:
    from mnas_tf.data.prepare import prepare

    if os.path.exists(directory):
        shutil.rmtree(directory)  # unfinished: start over
    splits = os.path.join(directory, "splits")
    records = os.path.join(directory, "records")
    os.makedirs(splits)
    if len(parts) == 2:
        todo = [("train", parts[0][0], train_images), ("val", parts[1][0], parts[1][1])]
        categories = train["categories"] + [c for c in parts[1][2]["categories"]
                                            if c["id"] not in {t["id"] for t in
                                                               train["categories"]}]
    else:
        if len(train["images"]) < 2:
            raise DataError(f"{parts[0][0]}: one image cannot be split into search-train and "
                            f"search-val; give data.val")
        count = max(1, min(len(train["images"]) - 1,
                           round(val_fraction * len(train["images"]))))
        halves = split_coco(train, count, seed)
        todo = []
        for name, half in zip(("train", "val"), halves):
            path = os.path.join(splits, f"{name}.json")
            write_json_atomic(half, path)
            todo.append((name, path, train_images))
        categories = train["categories"]
    prepared = {name: prepare(ann, images, records, name=name, progress=progress)
                for name, ann, images in todo}
    categories = sorted(categories, key=lambda c: c["id"])
    rel = lambda p: os.path.relpath(p, directory)  # noqa: E731
    manifest = {
        "version": VERSION, "held_out": len(parts) == 1,
        "num_classes": max(c["id"] for c in categories) + 1,
        "category_names": [c["name"] for c in categories],
        "counts": {n: {"images": p.num_images, "annotations": p.num_annotations}
                   for n, p in prepared.items()},
        **{f"{n}_{kind}": rel(getattr(p, kind)) for n, p in prepared.items()
           for kind in ("records", "annotations")},
    }
    write_json_atomic(manifest, os.path.join(directory, MANIFEST))


def data_override(section: dict, progress: bool = True) -> dict:
    """A `data:` section ({train: {annotations, images}, val: {...}, val_fraction}) as a
    Model Garden override: input paths, evaluation annotations and model.num_classes."""
    if not isinstance(section, dict) or not isinstance(section.get("train"), dict):
        raise DataError(f"data.train must be {{annotations: FILE, images: DIR}}, got "
                        f"{section.get('train') if isinstance(section, dict) else section!r}")
    unknown = sorted(set(section) - {"train", "val", "val_fraction"})
    if unknown:
        raise DataError(f"data: unknown key(s) {', '.join(unknown)}; valid keys are train, "
                        f"val, val_fraction")
    val = section.get("val") or {}
    data = user_dataset(section["train"].get("annotations"), section["train"].get("images"),
                        val.get("annotations"), val.get("images"),
                        val_fraction=section.get("val_fraction", 0.2), progress=progress)
    return {"task": {"train_data": {"input_path": data.train_records},
                     "validation_data": {"input_path": data.val_records},
                     "annotation_file": data.val_annotations,
                     "model": {"num_classes": data.num_classes}}}
