"""Category names of a detector's data, and the label map that ships beside its TFLite.

A detector's class index is the COCO category id (model.num_classes = max id + 1, 0 is
background), so the names travel as a label map: line i names class i, and "???" marks
the background and any unused id (the convention of TFLite's detection examples).
"""

from __future__ import annotations

import json
import os
from typing import Optional

UNUSED = "???"


def categories_of(annotation_file: Optional[str]) -> list[dict]:
    """[{id, name}] of a COCO annotation file, sorted by id; the embedded dataset's for a
    `synthetic://` path (without generating it); [] when there is no file."""
    from mnas_tf.configs.retinanet import SYNTHETIC
    if not annotation_file:
        return []
    if annotation_file.startswith(SYNTHETIC):
        from mnas_tf.data.synthetic import CATEGORIES
        cats = CATEGORIES
    else:
        if not (annotation_file.endswith(".json") and os.path.isfile(annotation_file)):
            return []
        with open(annotation_file) as f:
            cats = json.load(f).get("categories") or []
    return sorted(({"id": int(c["id"]), "name": str(c["name"])} for c in cats),
                  key=lambda c: c["id"])


def label_map(categories: list[dict], num_classes: int) -> list[str]:
    """One name per class index 0..num_classes-1."""
    names = [UNUSED] * num_classes
    for c in categories:
        if 0 < c["id"] < num_classes:
            names[c["id"]] = c["name"]
    return names


def label_map_path(tflite_path: str) -> str:
    """Where the label map of `model.tflite` goes: `model.labels.txt`."""
    return os.path.splitext(tflite_path)[0] + ".labels.txt"


def write_label_map(path: str, names: list[str]) -> None:
    with open(path, "w") as f:
        f.write("".join(f"{n}\n" for n in names))
