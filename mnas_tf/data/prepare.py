"""Convert a COCO-format dataset into sharded TFRecords for Model Garden.

The records are built by Model Garden's own `create_tf_example`, so its
`TfExampleDecoder` (what `RetinaNetTask.build_inputs` uses) reads them as-is.
The cleaned COCO JSON is written next to the shards for COCO evaluation
(`task.annotation_file`): its image ids are the records' `source_id`s.

Output for ``name="train"``::

    OUT/train-00000-of-00004.tfrecord ... OUT/train-00003-of-00004.tfrecord
    OUT/train.json

Everything is written into a temporary folder inside OUT first and renamed
into place; ``NAME.json`` is moved last, so a killed run never leaves a set
that looks complete.

COCO 2017 as downloaded::

    python -m mnas_tf.data prepare --annotations annotations/instances_val2017.json \\
        --images val2017 --out coco --name val
    python -m mnas_tf.data prepare --annotations annotations/instances_train2017.json \\
        --images train2017 --out coco --name train --skip-bad --processes 8

instances_train2017.json is reported to hold two boxes of height 0
(annotation ids 918 and 2206849; cocodataset/cocoapi#355): the strict default
stops on the first, ``--skip-bad`` drops both and reports the count.
num_classes comes out as 91 (category ids 1..90, not contiguous).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import shutil
import sys
import tempfile
from typing import Iterator

from mnas_tf.data.coco import DataError, format_skip_report, load_coco, validate_coco

MAX_DEFAULT_SHARDS = 256
IMAGES_PER_SHARD = 1000
# Only what create_tf_example reads when include_masks=False; dropping the
# segmentation polygons keeps worker pickling cheap.
_BOX_KEYS = ("bbox", "category_id", "iscrowd", "area")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclasses.dataclass(frozen=True)
class PreparedSplit:
    """Where one prepared split lives, and what Model Garden needs to know."""

    records: str  # glob pattern of the TFRecord shards
    annotations: str  # cleaned COCO JSON (for COCO evaluation)
    num_images: int
    num_annotations: int
    num_classes: int  # max category id + 1: Model Garden's model.num_classes
    skipped: dict


def records_pattern(out: str, name: str) -> str:
    """Glob of a split's shards; exact digits so 'train' never matches 'train-x'."""
    return os.path.join(out, f"{name}-?????-of-?????.tfrecord")


def default_num_shards(num_images: int) -> int:
    """About 1000 images per shard, between 1 and 256 shards."""
    return min(MAX_DEFAULT_SHARDS, max(1, num_images // IMAGES_PER_SHARD))


class _Serialized:
    """A pre-serialized example for `write_tf_record_dataset`, which calls
    `SerializeToString()`: protobuf map order varies between processes unless
    serialized with deterministic=True, and bytes pickle cheaply from workers."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def SerializeToString(self) -> bytes:  # noqa: N802 - protobuf's name
        return self.data


def _encode(task: tuple) -> tuple[_Serialized, int]:
    """Build one tf.train.Example with Model Garden (runs in worker processes)."""
    from mnas_tf.data._model_garden import create_coco_tf_record

    image, boxes, images_dir, id_to_name = task
    example, num_skipped = create_coco_tf_record().create_tf_example(
        image, image_dirs=[images_dir], bbox_annotations=boxes,
        id_to_name_map=id_to_name, include_masks=False,
    )
    if num_skipped:
        raise RuntimeError(
            f"Model Garden dropped {num_skipped} of {len(boxes)} boxes of image id "
            f"{image['id']} ({image['file_name']}) that passed validation; please report"
        )
    return _Serialized(example.SerializeToString(deterministic=True)), 0


def _tasks(clean: dict, images_dir: str) -> Iterator[tuple]:
    """(image, its boxes, images_dir, id->name) per image, in JSON order."""
    id_to_name = {c["id"]: c["name"] for c in clean["categories"]}
    by_image: dict[int, list] = {img["id"]: [] for img in clean["images"]}
    for ann in clean["annotations"]:
        by_image[ann["image_id"]].append({k: ann[k] for k in _BOX_KEYS})
    for image in clean["images"]:
        fields = {k: image[k] for k in ("id", "file_name", "width", "height")}
        yield fields, by_image[image["id"]], images_dir, id_to_name


def _examples(tasks: Iterator[tuple], processes: int) -> Iterator[tuple]:
    """Encoded examples in task order, lazily (Model Garden's own pool.starmap
    would hold every encoded image of the dataset in memory before writing)."""
    if processes <= 0:
        yield from map(_encode, tasks)
        return
    import multiprocessing

    with multiprocessing.Pool(processes) as pool:
        yield from pool.imap(_encode, tasks, chunksize=16)


def _identity(result: tuple) -> tuple:
    return result


def _write_json(data: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))


def _check_args(out: str, name: str, num_shards: int | None, processes: int) -> None:
    if "," in out or "," in name:
        raise DataError(f"{out}: Model Garden splits input_path on commas; "
                        "choose an output folder and name without ','")
    if not _NAME.fullmatch(name):
        raise DataError(f"invalid split name {name!r}: use letters, digits, '_', '-' or '.', "
                        "e.g. 'train' (it becomes a file-name prefix and a glob)")
    if num_shards is not None and not 1 <= num_shards <= 99999:
        raise DataError(f"--shards must be between 1 and 99999, got {num_shards}")
    if processes < 0:
        raise DataError(f"--processes must be >= 0, got {processes}")


def _install(tmp: str, out: str, name: str) -> None:
    """Swap the new shards and JSON into OUT; the JSON goes last."""
    final_json = os.path.join(out, f"{name}.json")
    if os.path.exists(final_json):
        os.remove(final_json)
    for old in glob.glob(records_pattern(out, name)):
        os.remove(old)
    for shard in sorted(glob.glob(records_pattern(tmp, name))):
        os.replace(shard, os.path.join(out, os.path.basename(shard)))
    os.replace(os.path.join(tmp, f"{name}.json"), final_json)


def prepare(
    annotations: str,
    images: str,
    out: str,
    name: str = "train",
    num_shards: int | None = None,
    skip_bad: bool = False,
    processes: int = 0,
    progress: bool = True,
) -> PreparedSplit:
    """Validate a COCO dataset and write it as TFRecord shards + cleaned JSON.

    ``processes`` > 0 encodes images in that many worker processes.
    Skipped records (``skip_bad``) are reported on stderr and in `skipped`.
    """
    _check_args(out, name, num_shards, processes)
    data = load_coco(annotations)
    clean, skipped = validate_coco(data, images, skip_bad=skip_bad, json_path=annotations)
    del data
    if skipped:
        print(f"{annotations}: {format_skip_report(skipped)}", file=sys.stderr)
    if not clean["annotations"]:
        print(f"warning: {annotations} has no annotations: every image is written without "
              f"boxes, so a detector trained on it learns nothing", file=sys.stderr)
    if not clean["images"]:
        raise DataError(f"{annotations}: no valid images left to write")
    num_images = len(clean["images"])
    shards = num_shards or default_num_shards(num_images)

    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    for stale in glob.glob(os.path.join(out, f".{name}-tmp-*")):
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed run
    tmp = tempfile.mkdtemp(prefix=f".{name}-tmp-", dir=out)
    try:
        _write_shards(clean, images, os.path.join(tmp, name), shards, processes, progress, name)
        _write_json(clean, os.path.join(tmp, f"{name}.json"))
        _install(tmp, out, name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    return PreparedSplit(
        records=records_pattern(out, name),
        annotations=os.path.join(out, f"{name}.json"),
        num_images=num_images,
        num_annotations=len(clean["annotations"]),
        num_classes=max(c["id"] for c in clean["categories"]) + 1,
        skipped=dict(skipped),
    )


def _write_shards(clean: dict, images_dir: str, prefix: str, num_shards: int,
                  processes: int, progress: bool, name: str) -> None:
    from tqdm import tqdm

    from official.vision.data import tfrecord_lib

    examples = _examples(_tasks(clean, images_dir), processes)
    bar = tqdm(examples, total=len(clean["images"]), desc=f"prepare {name}",
               unit="img", disable=not progress, file=sys.stderr)
    try:
        tfrecord_lib.write_tf_record_dataset(
            prefix, bar, _identity, num_shards,
            multiple_processes=0, unpack_arguments=False,
        )
    finally:
        bar.close()
        examples.close()


def read_examples(records_glob: str, limit: int | None = None) -> list[dict]:
    """Decode records with Model Garden's `TfExampleDecoder` into numpy dicts.

    Boxes are normalized [ymin, xmin, ymax, xmax], exactly what training sees.
    """
    import tensorflow as tf

    from official.vision.dataloaders.tf_example_decoder import TfExampleDecoder

    files = sorted(tf.io.gfile.glob(records_glob))
    if not files:
        raise DataError(f"{records_glob}: no TFRecord files match")
    decoder = TfExampleDecoder()
    dataset = tf.data.TFRecordDataset(files)
    if limit is not None:
        dataset = dataset.take(limit)
    examples = []
    for serialized in dataset:
        decoded = decoder.decode(serialized)
        examples.append({
            "source_id": decoded["source_id"].numpy().decode("utf-8"),
            "height": int(decoded["height"]),
            "width": int(decoded["width"]),
            "image": decoded["image"].numpy(),
            "groundtruth_boxes": decoded["groundtruth_boxes"].numpy(),
            "groundtruth_classes": decoded["groundtruth_classes"].numpy(),
            "groundtruth_is_crowd": decoded["groundtruth_is_crowd"].numpy(),
            "groundtruth_area": decoded["groundtruth_area"].numpy(),
        })
    return examples
