"""`export.tflite` on your own COCO data: --train-annotations/--train-images set the
exported model's num_classes (and give int8 calibration its images); bad data: one line."""

import json
import os

import pytest

from export import tflite
from tests.own_data import write_dataset


class _Stop(Exception):
    pass


def _params_of(argv, monkeypatch):
    """The export's experiment config for `argv` (the real loader; stops before building)."""
    from export import detector
    real, seen = detector.load_params, {}

    def load_params(*args, **kwargs):
        seen["params"] = real(*args, **kwargs)
        raise _Stop

    monkeypatch.setattr(detector, "load_params", load_params)
    with pytest.raises(_Stop):
        tflite._export(tflite._parser().parse_args(argv))
    return seen["params"]


def test_data_flags_reach_the_export_params(tmp_path, monkeypatch):
    monkeypatch.setenv("MNAS_TF_DATA", str(tmp_path / "cache"))
    ann, images = write_dataset(str(tmp_path), num_images=4)
    params = _params_of([
        "--experiment", "mnasfpn_synthetic", "--random-weights", "--out",
        str(tmp_path / "m.tflite"), "--train-annotations", ann, "--train-images", images],
        monkeypatch)
    assert params.task.model.num_classes == 2
    assert params.task.train_data.input_path.endswith("train-?????-of-?????.tfrecord")


def test_export_config_data_section(tmp_path, monkeypatch):
    """`export.tflite --config` takes the same `data:` section as train and search."""
    from mnas_tf.data.labels import categories_of, label_map
    monkeypatch.setenv("MNAS_TF_DATA", str(tmp_path / "cache"))
    ann, images = write_dataset(str(tmp_path), num_images=4)
    config = tmp_path / "own.yaml"
    config.write_text(json.dumps({"experiment": "mnasfpn_synthetic",
                                  "data": {"train": {"annotations": ann, "images": images}}}))
    params = _params_of(["--config", str(config), "--random-weights", "--out",
                         str(tmp_path / "m.tflite")], monkeypatch)
    assert params.task.model.num_classes == 2
    assert os.path.isfile(params.task.annotation_file)
    # the label map the export writes beside the .tflite
    assert label_map(categories_of(params.task.annotation_file),
                     params.task.model.num_classes) == ["???", "tree"]


def test_bad_data_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNAS_TF_DATA", str(tmp_path / "cache"))
    code = tflite.main(["--experiment", "mnasfpn_synthetic", "--random-weights", "--out",
                        str(tmp_path / "m.tflite"), "--train-annotations",
                        str(tmp_path / "nope.json"), "--train-images", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "annotation file not found" in err
    assert len(err.strip().splitlines()) == 1
