"""mnas_tf.data.prepare: Model Garden TFRecords that read back as the JSON."""

import glob
import importlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mnas_tf.data import DataError, PreparedSplit, load_coco, prepare, read_examples

prepare_module = importlib.import_module("mnas_tf.data.prepare")


def _expected(clean):
    """source_id -> (normalized [ymin, xmin, ymax, xmax], classes) from a COCO dict."""
    sizes = {img["id"]: (img["width"], img["height"]) for img in clean["images"]}
    out = {str(i): ([], []) for i in sizes}
    for ann in clean["annotations"]:
        w, h = sizes[ann["image_id"]]
        x, y, bw, bh = ann["bbox"]
        out[str(ann["image_id"])][0].append([y / h, x / w, (y + bh) / h, (x + bw) / w])
        out[str(ann["image_id"])][1].append(ann["category_id"])
    return out


def test_prepare_writes_shards_that_read_back_as_the_json(coco_dataset, tmp_path):
    path, images_dir, _ = coco_dataset()
    out = tmp_path / "records"
    result = prepare(path, images_dir, str(out), name="train", num_shards=2, progress=False)

    assert isinstance(result, PreparedSplit)
    assert (result.num_images, result.num_annotations, result.num_classes) == (3, 3, 6)
    assert result.skipped == {}
    assert sorted(os.path.basename(p) for p in glob.glob(result.records)) == [
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert result.annotations == str(out / "train.json")
    clean = load_coco(result.annotations)
    assert clean["licenses"] == [{"id": 1, "name": "test"}]
    assert not [p for p in os.listdir(out) if p.startswith(".")]  # temp dir removed

    examples = read_examples(result.records)
    expected = _expected(clean)
    assert sorted(e["source_id"] for e in examples) == ["1", "2", "3"]
    for ex in examples:
        boxes, classes = expected[ex["source_id"]]
        np.testing.assert_allclose(ex["groundtruth_boxes"], np.reshape(boxes, (-1, 4)),
                                   atol=1e-6)
        np.testing.assert_array_equal(ex["groundtruth_classes"], classes)
        assert ex["image"].shape == (ex["height"], ex["width"], 3)
    by_id = {e["source_id"]: e for e in examples}
    assert by_id["2"]["groundtruth_boxes"].max() <= 1.0  # the clipped overshooting box
    assert len(read_examples(result.records, limit=1)) == 1


def test_rerun_replaces_stale_shards_and_default_shard_count(coco_dataset, tmp_path):
    path, images_dir, _ = coco_dataset()
    out = str(tmp_path / "records")
    prepare(path, images_dir, out, num_shards=4, progress=False)
    result = prepare(path, images_dir, out, progress=False)
    assert [os.path.basename(p) for p in glob.glob(result.records)] == [
        "train-00000-of-00001.tfrecord"]
    assert prepare_module.default_num_shards(999) == 1
    assert prepare_module.default_num_shards(118_287) == 118
    assert prepare_module.default_num_shards(10_000_000) == 256


def test_output_is_deterministic_and_processes_do_not_change_it(coco_dataset, tmp_path):
    path, images_dir, _ = coco_dataset()
    a = prepare(path, images_dir, str(tmp_path / "a"), num_shards=1, progress=False)
    b = prepare(path, images_dir, str(tmp_path / "b"), num_shards=1, processes=2,
                progress=False)
    read = lambda p: open(glob.glob(p)[0], "rb").read()  # noqa: E731
    assert read(a.records) == read(b.records)


def test_failed_write_leaves_nothing_that_looks_complete(coco_dataset, tmp_path, monkeypatch):
    path, images_dir, _ = coco_dataset()
    out = tmp_path / "records"

    def boom(*args, **kwargs):
        raise KeyboardInterrupt  # as if killed after the shards were written

    monkeypatch.setattr(prepare_module, "_write_json", boom)
    with pytest.raises(KeyboardInterrupt):
        prepare(path, images_dir, str(out), progress=False)
    assert os.listdir(out) == []


def test_skip_bad_reports_and_counts(coco_dataset, tmp_path, capsys):
    def break_it(data):
        data["annotations"][0]["bbox"] = [60, 0, 20, 10]
        data["annotations"][1]["category_id"] = 42

    path, images_dir, _ = coco_dataset(break_it)
    with pytest.raises(DataError, match="annotation id 10"):
        prepare(path, images_dir, str(tmp_path / "strict"), progress=False)
    assert not os.path.exists(tmp_path / "strict" / "train.json")

    result = prepare(path, images_dir, str(tmp_path / "r"), skip_bad=True, progress=False)
    assert result.skipped == {"box_outside_image": 1, "unknown_category": 1}
    assert result.num_annotations == 1
    err = capsys.readouterr().err
    assert "skipped 2 records: box_outside_image 1, unknown_category 1" in err


def test_bad_arguments(coco_dataset, tmp_path):
    path, images_dir, _ = coco_dataset()
    bad = ({"name": "a/b"}, {"name": "*"}, {"name": ".x"}, {"num_shards": 0},
           {"processes": -1})
    for kwargs in bad:
        with pytest.raises(DataError):
            prepare(path, images_dir, str(tmp_path), progress=False, **kwargs)
    with pytest.raises(DataError, match="no TFRecord files match"):
        read_examples(str(tmp_path / "none-*.tfrecord"))


def test_cli_prepare(coco_dataset, tmp_path, capsys):
    from mnas_tf.data.__main__ import main

    path, images_dir, _ = coco_dataset()
    assert main(["prepare", "--annotations", str(tmp_path / "missing.json"),
                 "--images", images_dir, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.json" in err and err.count("\n") == 1

    assert main(["prepare", "--annotations", path, "--images", images_dir,
                 "--out", str(tmp_path / "o"), "--name", "val", "--shards", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["num_images"] == 3 and printed["records"].endswith("val-?????-of-?????.tfrecord")

    assert main(["prepare", "--annotations", path]) == 2
    assert "required" in capsys.readouterr().err


def test_model_garden_converter_survives_flag_conflicts():
    """Another absl user owning --num_shards must not break our import."""
    script = textwrap.dedent("""
        from absl import flags
        flags.DEFINE_integer("num_shards", 7, "someone else's flag")
        from mnas_tf.data import _model_garden
        module = _model_garden.create_coco_tf_record()
        assert module is _model_garden.create_coco_tf_record()
        assert callable(module.create_tf_example)
        assert flags.FLAGS["num_shards"].default == 7
        print("ok")
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "ok"
