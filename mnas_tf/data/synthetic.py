"""The embedded default dataset: synthetic shapes in COCO format, cached.

The demo and the tests need a detection dataset that exists offline, is
small, and still rewards multi-scale heads: six shape classes at all three
COCO scales on textured backgrounds, with occlusion (see `scene`). Image i of
a split is drawn from ``default_rng([seed, split, i])``, so a config always
yields byte-identical JSON and images, and images can be made in any order.
(Plain ``seed + i`` would make seed 1 a shifted copy of seed 0.)

`default_dataset` builds it once per config under ``$MNAS_TF_DATA`` (default
``~/.cache/mnas_tf/datasets``): images + COCO JSON, TFRecords for train/val,
and a search_train/search_val split of train. ``manifest.json`` is written
last and marks a finished build; later calls just read it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import sys
from typing import Iterator

import numpy as np
from PIL import Image

from mnas_tf.data import scene, shapes
from mnas_tf.data.split import split_coco, write_json_atomic

# Bump when rendering changes, so cached datasets are rebuilt.
GENERATOR_VERSION = 1
SPLITS = ("train", "val")
MANIFEST = "manifest.json"
CATEGORIES = [
    {"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(shapes.NAMES)
]
NUM_CLASSES = len(CATEGORIES) + 1  # max category id + 1 (0 = background)


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """What to generate; every field is part of the cache key."""

    num_train: int = 512
    num_val: int = 128
    image_size: int = 320
    seed: int = 0
    max_objects: int = 8
    min_visible: float = 0.5  # fraction of an object that must stay visible
    jpeg_quality: int = 90

    def __post_init__(self):
        if self.num_train < 2 or self.num_val < 1:
            raise ValueError("need num_train >= 2 (it is split again for search) and "
                             f"num_val >= 1, got {self.num_train} and {self.num_val}")
        if self.image_size < 64:
            raise ValueError(f"image_size must be >= 64, got {self.image_size}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.max_objects < 1:
            raise ValueError(f"max_objects must be >= 1, got {self.max_objects}")
        if not 0.0 < self.min_visible <= 1.0:
            raise ValueError(f"min_visible must be in (0, 1], got {self.min_visible}")

    def key(self) -> str:
        """Short stable hash of the config and generator version."""
        fields = {"generator": GENERATOR_VERSION, **dataclasses.asdict(self)}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def _render_one(task: tuple[SyntheticConfig, int, int, str]) -> list[scene.Box]:
    """Render image `index` of split `split_id`, write its JPEG, return its boxes."""
    config, split_id, index, path = task
    rng = np.random.default_rng([config.seed, split_id, index])
    pixels, boxes = scene.render(rng, config.image_size, config.max_objects, config.min_visible)
    Image.fromarray(pixels, "RGB").save(path, "JPEG", quality=config.jpeg_quality)
    return boxes


def _coco(config: SyntheticConfig, per_image: list[list[scene.Box]]) -> dict:
    """The COCO dict of one split; ids are 1-based and sequential."""
    images, annotations = [], []
    for image_id, boxes in enumerate(per_image, start=1):
        images.append({"id": image_id, "file_name": f"{image_id:06d}.jpg",
                       "width": config.image_size, "height": config.image_size})
        for box in boxes:
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id,
                "category_id": box.category + 1, "bbox": list(box.bbox),
                "area": box.area, "iscrowd": 0,
            })
    return {
        "info": {"description": "mnas-tf synthetic shapes", "version": str(GENERATOR_VERSION),
                 "config": dataclasses.asdict(config)},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }


def _default_processes(num_images: int) -> int:
    """Worker processes: none for small sets, where start-up would dominate."""
    return 0 if num_images < 128 else min(8, os.cpu_count() or 1)


def generate(config: SyntheticConfig, out_dir: str, progress: bool = True,
             processes: int | None = None) -> tuple[str, str]:
    """Write the dataset; returns the (train, val) COCO JSON paths.

    Layout: ``out_dir/images/{train,val}/NNNNNN.jpg`` and
    ``out_dir/annotations/{train,val}.json``. Images are rendered in
    ``processes`` worker processes (None: one per core for larger sets);
    the output does not depend on it.
    """
    from tqdm import tqdm

    out_dir = os.path.abspath(out_dir)
    os.makedirs(os.path.join(out_dir, "annotations"), exist_ok=True)
    tasks, sizes = [], []
    for split_id, split in enumerate(SPLITS):
        images_dir = os.path.join(out_dir, "images", split)
        os.makedirs(images_dir, exist_ok=True)
        count = config.num_train if split == "train" else config.num_val
        tasks += [(config, split_id, i, os.path.join(images_dir, f"{i + 1:06d}.jpg"))
                  for i in range(count)]
        sizes.append(count)
    if processes is None:
        processes = _default_processes(len(tasks))

    with contextlib.ExitStack() as stack:
        if processes > 1:
            import multiprocessing

            pool = stack.enter_context(multiprocessing.Pool(processes))
            results = pool.imap(_render_one, tasks, chunksize=8)
        else:
            results = map(_render_one, tasks)
        boxes = list(tqdm(results, total=len(tasks), desc="synthesize", unit="img",
                          disable=not progress, file=sys.stderr))

    paths = []
    for split, per_image in zip(SPLITS, (boxes[:sizes[0]], boxes[sizes[0]:])):
        path = os.path.join(out_dir, "annotations", f"{split}.json")
        write_json_atomic(_coco(config, per_image), path)
        paths.append(path)
    return paths[0], paths[1]


@dataclasses.dataclass(frozen=True)
class DatasetPaths:
    """Everything a training config needs from the default dataset."""

    root: str
    train_records: str  # glob patterns of TFRecord shards
    train_annotations: str  # COCO JSON for evaluation
    val_records: str
    val_annotations: str
    search_train_records: str
    search_train_annotations: str
    search_val_records: str
    search_val_annotations: str
    num_classes: int
    image_size: int


_PATH_FIELDS = [f.name for f in dataclasses.fields(DatasetPaths)
                if f.name.endswith(("_records", "_annotations"))]


def default_root() -> str:
    return os.environ.get("MNAS_TF_DATA") or os.path.join(
        os.path.expanduser("~"), ".cache", "mnas_tf", "datasets")


@contextlib.contextmanager
def cache_lock(root: str) -> Iterator[None]:
    """One builder per cache root at a time, across processes."""
    with open(os.path.join(root, ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_manifest(directory: str, config: SyntheticConfig,
                   search_val_fraction: float) -> DatasetPaths | None:
    """The finished dataset described by manifest.json, or None."""
    try:
        with open(os.path.join(directory, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    if (not isinstance(manifest, dict) or manifest.get("key") != config.key()
            or manifest.get("search_val_fraction") != search_val_fraction):
        return None
    try:
        relative = manifest["paths"]
        paths = DatasetPaths(
            root=directory,
            **{k: os.path.join(directory, relative[k]) for k in _PATH_FIELDS},
            num_classes=manifest["num_classes"], image_size=manifest["image_size"],
        )
    except (KeyError, TypeError):
        return None  # written by another version: rebuild
    if not all(os.path.isfile(getattr(paths, k)) for k in _PATH_FIELDS
               if k.endswith("_annotations")):
        return None
    return paths


def _build(directory: str, config: SyntheticConfig, search_val_fraction: float,
           progress: bool) -> None:
    """Generate, convert and split; manifest.json is written last."""
    from mnas_tf.data.prepare import prepare

    if os.path.exists(directory):
        shutil.rmtree(directory)  # unfinished or outdated: start over
    train_json, val_json = generate(config, directory, progress)
    images = os.path.join(directory, "images")
    records = os.path.join(directory, "records")
    with open(train_json, encoding="utf-8") as f:
        search_train, search_val = split_coco(json.load(f), search_val_fraction, config.seed)
    splits_dir = os.path.join(directory, "splits")
    os.makedirs(splits_dir, exist_ok=True)
    prepared = {}
    for name, annotations, image_dir in (
        ("train", train_json, "train"), ("val", val_json, "val"),
        ("search_train", search_train, "train"), ("search_val", search_val, "train"),
    ):
        if isinstance(annotations, dict):
            path = os.path.join(splits_dir, f"{name}.json")
            write_json_atomic(annotations, path)
            annotations = path
        prepared[name] = prepare(annotations, os.path.join(images, image_dir), records,
                                 name=name, progress=progress)

    rel = lambda p: os.path.relpath(p, directory)  # noqa: E731
    manifest = {
        "complete": True,
        "key": config.key(),
        "config": dataclasses.asdict(config),
        "search_val_fraction": search_val_fraction,
        "num_classes": NUM_CLASSES,
        "image_size": config.image_size,
        "counts": {n: {"images": p.num_images, "annotations": p.num_annotations}
                   for n, p in prepared.items()},
        "paths": {f"{n}_{kind}": rel(getattr(p, kind))
                  for n, p in prepared.items() for kind in ("records", "annotations")},
    }
    write_json_atomic(manifest, os.path.join(directory, MANIFEST))


def default_dataset(
    config: SyntheticConfig | None = None,
    root: str | None = None,
    search_val_fraction: float = 0.2,
    progress: bool = True,
) -> DatasetPaths:
    """The cached synthetic dataset for `config`, built on first use.

    A finished build is found through its manifest without importing
    TensorFlow. Asking for another `search_val_fraction` rebuilds the
    directory, since the fraction is not part of `config.key()`.
    """
    config = config or SyntheticConfig()
    if not 0.0 < search_val_fraction < 1.0:
        raise ValueError(f"search_val_fraction must be in (0, 1), got {search_val_fraction}")
    root = os.path.abspath(root or default_root())
    directory = os.path.join(root, f"synthetic-{config.key()}")
    paths = _read_manifest(directory, config, search_val_fraction)
    if paths is not None:
        return paths
    os.makedirs(root, exist_ok=True)
    with cache_lock(root):
        paths = _read_manifest(directory, config, search_val_fraction)
        if paths is None:  # nobody built it while we waited for the lock
            _build(directory, config, search_val_fraction, progress)
            paths = _read_manifest(directory, config, search_val_fraction)
    if paths is None:
        raise RuntimeError(f"{directory}: dataset build finished without a valid manifest")
    return paths
