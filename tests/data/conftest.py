"""Tiny COCO datasets built in tmp_path with Pillow."""

import copy
import json
import os

import pytest
from PIL import Image

# Three images: a JPEG, a PNG (with a box that overshoots by 0.5 px and
# lacks iscrowd/area, as some COCO exports do) and an image without boxes.
# Category ids are not contiguous: num_classes must be 5 + 1.
BASE = {
    "info": {"description": "tiny"},
    "licenses": [{"id": 1, "name": "test"}],
    "images": [
        {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
        {"id": 2, "file_name": "sub/b.png", "width": 40, "height": 40},
        {"id": 3, "file_name": "c.jpg", "width": 32, "height": 32},
    ],
    "annotations": [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [4, 6, 20, 10],
         "area": 200, "iscrowd": 0},
        {"id": 11, "image_id": 1, "category_id": 2, "bbox": [30, 20, 34, 28],
         "area": 900.5, "iscrowd": 0},
        {"id": 12, "image_id": 2, "category_id": 5, "bbox": [-0.5, 1, 41.0, 10]},
    ],
    "categories": [
        {"id": 1, "name": "one", "supercategory": "x"},
        {"id": 2, "name": "two", "supercategory": "x"},
        {"id": 5, "name": "five", "supercategory": "x"},
    ],
}


def write_images(images_dir, images):
    for i, img in enumerate(images):
        path = os.path.join(images_dir, img["file_name"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        colour = (40 * i % 256, 100, 200)
        Image.new("RGB", (img["width"], img["height"]), colour).save(path)


@pytest.fixture
def coco_dataset(tmp_path):
    """Returns (json_path, images_dir, data); pass mutate(data) to alter the
    JSON before it is written (images are written from the unmodified list)."""

    def build(mutate=None, name="instances.json"):
        data = copy.deepcopy(BASE)
        images_dir = tmp_path / "images"
        images_dir.mkdir(exist_ok=True)
        write_images(str(images_dir), data["images"])
        if mutate is not None:
            mutate(data)
        path = tmp_path / name
        path.write_text(json.dumps(data))
        return str(path), str(images_dir), data

    return build
