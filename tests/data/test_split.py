"""mnas_tf.data.split: deterministic by (seed, image id), sizes honoured."""

import json
import random

import pytest

from mnas_tf.data import DataError, split_coco, split_file


def _dataset(num_images=200, per_image=2):
    images = [{"id": 1000 + i, "file_name": f"{i}.jpg", "width": 10, "height": 10}
              for i in range(num_images)]
    annotations = [{"id": k, "image_id": img["id"], "category_id": 1, "bbox": [0, 0, 1, 1]}
                   for k, img in enumerate(images * per_image)]
    return {"info": {"v": 1}, "images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "a"}]}


def _ids(half):
    return {img["id"] for img in half["images"]}


def test_same_seed_same_split_and_other_seed_differs():
    data = _dataset()
    train, val = split_coco(data, 20, seed=3)
    train2, val2 = split_coco(data, 20, seed=3)
    assert (train, val) == (train2, val2)
    _, other = split_coco(data, 20, seed=4)
    assert _ids(other) != _ids(val)


def test_invariant_to_image_order():
    data = _dataset()
    shuffled = dict(data, images=random.Random(1).sample(data["images"], len(data["images"])))
    assert _ids(split_coco(data, 0.25)[1]) == _ids(split_coco(shuffled, 0.25)[1])


@pytest.mark.parametrize("val_size,expected", [(7, 7), (0.1, 20), (0.25, 50), (199, 199)])
def test_sizes_partition_and_annotations_follow(val_size, expected):
    data = _dataset()
    train, val = split_coco(data, val_size)
    assert len(val["images"]) == expected and len(train["images"]) == 200 - expected
    assert not _ids(train) & _ids(val)
    assert _ids(train) | _ids(val) == {img["id"] for img in data["images"]}
    for half in (train, val):
        assert {a["image_id"] for a in half["annotations"]} == _ids(half)
        assert half["categories"] == data["categories"] and half["info"] == data["info"]
    assert len(train["annotations"]) + len(val["annotations"]) == len(data["annotations"])


def test_val_set_is_stable_when_other_images_are_added():
    """Ranking is per image: held out among many means held out among fewer."""
    small, big = _dataset(100), _dataset(200)
    held_small = _ids(split_coco(small, 10)[1])
    held_big = _ids(split_coco(big, 10)[1])
    assert held_big & _ids(small) <= held_small


@pytest.mark.parametrize("val_size", [0, -1, 200, 500, 0.0, 1.0, 1.5, 0.001, "7", True])
def test_bad_sizes_are_rejected(val_size):
    with pytest.raises(DataError):
        split_coco(_dataset(), val_size)


def test_duplicate_ids_and_orphan_annotations_are_rejected():
    data = _dataset(10)
    data["images"].append(dict(data["images"][0]))
    with pytest.raises(DataError, match="not unique"):
        split_coco(data, 2)
    data = _dataset(10)
    data["annotations"].append({"id": 99, "image_id": 5, "category_id": 1, "bbox": [0, 0, 1, 1]})
    with pytest.raises(DataError, match="annotation id 99"):
        split_coco(data, 2)


def test_split_file_writes_both_halves(tmp_path):
    source = tmp_path / "train.json"
    source.write_text(json.dumps(_dataset()))
    train_path, val_path = split_file(str(source), str(tmp_path / "out"), 30, seed=0)
    assert train_path.endswith("out/search_train.json")
    assert val_path.endswith("out/search_val.json")
    train, val = (json.loads(open(p).read()) for p in (train_path, val_path))
    assert (len(train["images"]), len(val["images"])) == (170, 30)
    assert (train, val) == tuple(split_coco(_dataset(), 30, seed=0))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "search_train.json", "search_val.json"]


def test_cli_split(tmp_path, capsys):
    from mnas_tf.data.__main__ import main

    source = tmp_path / "train.json"
    source.write_text(json.dumps(_dataset()))
    assert main(["split", "--annotations", str(source), "--out", str(tmp_path / "o"),
                 "--val-size", "0.1", "--seed", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(json.loads(open(printed["search_val"]).read())["images"]) == 20
    assert main(["split", "--annotations", str(source), "--out", str(tmp_path / "o"),
                 "--val-size", "abc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
