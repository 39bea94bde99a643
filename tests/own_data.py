"""A tiny real-format COCO dataset for the own-data tests (JPEGs via PIL + JSON)."""

import json
import os

import numpy as np
from PIL import Image


def write_dataset(folder, num_images=6, size=96, name="train"):
    """A real-format one-class COCO dataset (category id 1 'tree': num_classes 2)."""
    images_dir = os.path.join(folder, f"{name}_images")
    os.makedirs(images_dir, exist_ok=True)
    rng = np.random.default_rng(len(name) + num_images)
    images, annotations = [], []
    for i in range(1, num_images + 1):
        pixels = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        x, y, w = int(rng.integers(0, size // 2)), int(rng.integers(0, size // 2)), size // 3
        pixels[y:y + w, x:x + w] = (30, 200, 40)
        Image.fromarray(pixels).save(os.path.join(images_dir, f"{i:03d}.jpg"), "JPEG")
        images.append({"id": i, "file_name": f"{i:03d}.jpg", "width": size, "height": size})
        annotations.append({"id": i, "image_id": i, "category_id": 1, "bbox": [x, y, w, w],
                            "area": w * w, "iscrowd": 0})
    path = os.path.join(folder, f"{name}.json")
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations,
                   "categories": [{"id": 1, "name": "tree", "supercategory": "plant"}]}, f)
    return path, images_dir
