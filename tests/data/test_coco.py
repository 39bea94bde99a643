"""mnas_tf.data.coco: every bad-data case is named, or skipped and counted."""

import collections
import copy
import json
import os
import random

import pytest
from PIL import Image

from mnas_tf.data import coco
from mnas_tf.data.coco import DataError, format_skip_report, load_coco, validate_coco


def _remove(rel):
    return lambda images_dir: os.remove(os.path.join(images_dir, rel))


def _garbage(rel):
    def write(images_dir):
        with open(os.path.join(images_dir, rel), "wb") as f:
            f.write(b"definitely not an image")
    return write


def _tiff(rel):
    return lambda images_dir: Image.new("RGB", (32, 32)).save(
        os.path.join(images_dir, rel), format="TIFF")


def _set(path, value):
    """Mutation setting data[k1][i][k2] = value for path (k1, i, k2)."""
    def mutate(data):
        data[path[0]][path[1]][path[2]] = value
    return mutate


def _append(key, record):
    return lambda data: data[key].append(record)


# (reason, mutate JSON, mutate files, text naming the record, expected skip counts)
CASES = [
    ("missing_image", None, _remove("sub/b.png"), "image id 2",
     {"missing_image": 1, "annotation_of_skipped_image": 1}),
    ("unreadable_image", None, _garbage("sub/b.png"), "image id 2",
     {"unreadable_image": 1, "annotation_of_skipped_image": 1}),
    ("unreadable_image", None, _tiff("c.jpg"), "image id 3", {"unreadable_image": 1}),
    ("image_size_mismatch", _set(("images", 0, "width"), 65), None, "image id 1",
     {"image_size_mismatch": 1, "annotation_of_skipped_image": 2}),
    ("box_outside_image", _set(("annotations", 0, "bbox"), [50, 0, 20, 10]), None,
     "annotation id 10", {"box_outside_image": 1}),
    ("box_outside_image", _set(("annotations", 0, "bbox"), [-3, 0, 10, 10]), None,
     "annotation id 10", {"box_outside_image": 1}),
    ("non_positive_box", _set(("annotations", 1, "bbox"), [1, 1, 0, 5]), None,
     "annotation id 11", {"non_positive_box": 1}),
    ("non_positive_box", _set(("annotations", 1, "bbox"), [1, 1, 5, -2]), None,
     "annotation id 11", {"non_positive_box": 1}),
    ("unknown_category", _set(("annotations", 2, "category_id"), 99), None,
     "annotation id 12", {"unknown_category": 1}),
    ("duplicate_image_id",
     _append("images", {"id": 1, "file_name": "c.jpg", "width": 32, "height": 32}), None,
     "image id 1", {"duplicate_image_id": 1}),
    ("annotation_for_unknown_image",
     _append("annotations", {"id": 13, "image_id": 77, "category_id": 1, "bbox": [0, 0, 1, 1]}),
     None, "annotation id 13", {"annotation_for_unknown_image": 1}),
    ("duplicate_annotation_id",
     _append("annotations", {"id": 10, "image_id": 3, "category_id": 1, "bbox": [0, 0, 1, 1]}),
     None, "annotation id 10", {"duplicate_annotation_id": 1}),
    ("malformed_record", _append("annotations", {"id": 14, "image_id": 3, "category_id": 1}),
     None, "id 14", {"malformed_record": 1}),
    ("malformed_record", _set(("images", 2, "id"), "c"), None, "images[2]",
     {"malformed_record": 1}),
]
IDS = [f"{c[0]}-{i}" for i, c in enumerate(CASES)]


def _build(coco_dataset, mutate_json, mutate_files):
    path, images_dir, data = coco_dataset(mutate_json)
    if mutate_files:
        mutate_files(images_dir)
    return path, images_dir, data


@pytest.mark.parametrize("reason,mutate_json,mutate_files,record,_counts", CASES, ids=IDS)
def test_bad_record_raises_naming_file_and_record(
        coco_dataset, reason, mutate_json, mutate_files, record, _counts):
    path, images_dir, data = _build(coco_dataset, mutate_json, mutate_files)
    with pytest.raises(DataError) as info:
        validate_coco(load_coco(path), images_dir, json_path=path)
    message = str(info.value)
    assert info.value.reason == reason
    assert path in message and record in message and reason in message
    assert "--skip-bad" in message
    assert "\n" not in message


@pytest.mark.parametrize("reason,mutate_json,mutate_files,_record,counts", CASES, ids=IDS)
def test_skip_bad_counts_by_reason(
        coco_dataset, reason, mutate_json, mutate_files, _record, counts):
    path, images_dir, data = _build(coco_dataset, mutate_json, mutate_files)
    clean, skipped = validate_coco(load_coco(path), images_dir, skip_bad=True, json_path=path)
    assert dict(skipped) == counts
    kept_images = {img["id"] for img in clean["images"]}
    assert all(a["image_id"] in kept_images for a in clean["annotations"])
    total_in = len(data["images"]) + len(data["annotations"])
    total_out = len(clean["images"]) + len(clean["annotations"])
    assert total_in - total_out == sum(counts.values())  # nothing dropped silently


def test_clean_dataset_passes_and_is_normalised(coco_dataset):
    path, images_dir, data = coco_dataset()
    original = copy.deepcopy(data)
    clean, skipped = validate_coco(data, images_dir, json_path=path)
    assert not skipped
    assert data == original  # input untouched
    assert clean["info"] == data["info"] and clean["licenses"] == data["licenses"]
    assert [img["id"] for img in clean["images"]] == [1, 2, 3]
    by_id = {a["id"]: a for a in clean["annotations"]}
    assert by_id[11]["bbox"] == [30, 20, 34, 28]  # touches the border exactly: kept as is
    assert by_id[12]["bbox"] == [0, 1, 40.0, 10]  # 0.5 px overshoot clipped
    assert by_id[12]["iscrowd"] == 0 and by_id[12]["area"] == 400.0


def test_fit_extent_survives_model_gardens_float_check():
    rng = random.Random(0)
    for _ in range(2000):
        limit = rng.randint(1, 2000)
        start = rng.uniform(0, limit - 0.01)
        extent = coco._fit_extent(start, limit + rng.uniform(0, 1), limit)
        assert 0 < extent and start + extent <= limit


def test_categories_are_checked_even_when_skipping(coco_dataset):
    path, images_dir, data = coco_dataset()
    data["categories"][0]["id"] = 0
    with pytest.raises(DataError, match="category ids must be integers >= 1"):
        validate_coco(data, images_dir, skip_bad=True, json_path=path)
    data["categories"][0]["id"] = 2
    with pytest.raises(DataError, match="category id 2 is defined twice"):
        validate_coco(data, images_dir, skip_bad=True, json_path=path)


def test_malformed_json_names_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [\n  {"id": 1,, "file_name": "a.jpg"}]}')
    with pytest.raises(DataError) as info:
        load_coco(str(path))
    assert str(path) in str(info.value)
    assert "line 2, column 12" in str(info.value)


def test_missing_top_level_key_is_named(tmp_path):
    path = tmp_path / "partial.json"
    path.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(DataError, match=r"partial.json: missing top-level key 'categories'"):
        load_coco(str(path))


def test_missing_files_and_folders(tmp_path, coco_dataset):
    with pytest.raises(DataError, match="annotation file not found"):
        load_coco(str(tmp_path / "nope.json"))
    path, _, data = coco_dataset()
    with pytest.raises(DataError, match="image directory not found"):
        validate_coco(data, str(tmp_path / "no_images"), json_path=path)


def test_images_are_opened_once_each_not_per_annotation(coco_dataset, monkeypatch):
    path, images_dir, data = coco_dataset()
    template = data["annotations"][0]
    data["annotations"] = [dict(template, id=i) for i in range(5000)]
    calls = collections.Counter()
    real = coco._probe_image
    monkeypatch.setattr(coco, "_probe_image", lambda p: calls.update([p]) or real(p))
    clean, _ = validate_coco(data, images_dir, json_path=path)
    assert len(clean["annotations"]) == 5000
    assert sum(calls.values()) == 3 and max(calls.values()) == 1


def test_many_images_use_the_probe_pool_and_keep_order(tmp_path):
    images_dir = tmp_path / "many"
    images_dir.mkdir()
    images = [{"id": i, "file_name": f"{i}.png", "width": 8, "height": 8} for i in range(200)]
    for img in images:
        Image.new("L", (8, 8)).save(images_dir / img["file_name"])
    data = {"images": images, "annotations": [], "categories": [{"id": 1, "name": "a"}]}
    os.remove(images_dir / "150.png")
    os.remove(images_dir / "170.png")
    with pytest.raises(DataError, match=r"image id 150 \("):  # the first problem, in order
        validate_coco(data, str(images_dir))
    clean, skipped = validate_coco(data, str(images_dir), skip_bad=True)
    assert skipped == {"missing_image": 2}
    assert [img["id"] for img in clean["images"]] == [i for i in range(200) if i not in (150, 170)]


def test_format_skip_report():
    report = format_skip_report(collections.Counter(box_outside_image=2, missing_image=1))
    assert report == "skipped 3 records: missing_image 1, box_outside_image 2"
    assert format_skip_report(collections.Counter()) == "skipped 0 records"
