"""`mnas_tf.train` on your own COCO data: the --train-/--val- flags and a YAML `data:`
section set the input paths and model.num_classes; bad data is one line, exit 2."""

import json
import os

from mnas_tf import train
from tests.own_data import write_dataset


def test_data_flags_set_paths_and_num_classes(tmp_path, monkeypatch):
    monkeypatch.setenv("MNAS_TF_DATA", str(tmp_path / "cache"))
    ann, images = write_dataset(str(tmp_path), num_images=4)
    params = train.load_params("mnasfpn_synthetic", [], [], {
        "train": {"annotations": ann, "images": images}}, progress=False)
    assert params.task.model.num_classes == 2
    assert params.task.train_data.input_path.endswith("train-?????-of-?????.tfrecord")
    assert params.task.validation_data.input_path.endswith("val-?????-of-?????.tfrecord")
    config = tmp_path / "own.yaml"
    config.write_text(json.dumps({"data": {"train": {"annotations": ann, "images": images}}}))
    again = train.load_params("mnasfpn_synthetic", [str(config)], [], progress=False)
    assert again.task.annotation_file == params.task.annotation_file  # cached, same records


def test_bad_data_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNAS_TF_DATA", str(tmp_path / "cache"))
    ann, images = write_dataset(str(tmp_path), num_images=3)
    os.remove(os.path.join(images, "001.jpg"))
    code = train.main(["--experiment", "mnasfpn_synthetic", "--model-dir",
                       str(tmp_path / "m"), "--train-annotations", ann,
                       "--train-images", images])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "001.jpg" in err
    assert len(err.strip().splitlines()) == 1


def test_data_section_in_the_base_config(tmp_path, monkeypatch):
    """A lone --config (it names the base experiment) may hold the `data:` section too, and
    the flags win over it part by part."""
    monkeypatch.setenv("MNAS_TF_DATA", str(tmp_path / "cache"))
    ann, images = write_dataset(str(tmp_path), num_images=4)
    val_ann, val_images = write_dataset(str(tmp_path), num_images=2, name="val")
    config = tmp_path / "own.yaml"
    config.write_text(json.dumps({"experiment": "mnasfpn_synthetic",
                                  "data": {"train": {"annotations": ann, "images": images}}}))
    params = train.load_params(None, [str(config)], [], progress=False)
    assert params.task.model.num_classes == 2
    with_val = train.load_params(None, [str(config)], [], {
        "val": {"annotations": val_ann, "images": val_images}}, progress=False)
    with open(with_val.task.annotation_file) as f:
        assert len(json.load(f)["images"]) == 2  # data.val from the flags, not held out
