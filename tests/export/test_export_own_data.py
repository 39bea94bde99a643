"""`export.tflite` on your own COCO data: --train-annotations/--train-images set the
exported model's num_classes (and give int8 calibration its images); bad data: one line."""

import os

import pytest

from export import tflite
from tests.own_data import write_dataset


class _Stop(Exception):
    pass


def test_data_flags_reach_the_export_params(tmp_path, monkeypatch):
    monkeypatch.setenv("MNAS_TF_DATA", str(tmp_path / "cache"))
    ann, images = write_dataset(str(tmp_path), num_images=4)
    from export import detector
    seen = {}

    def load_params(ref, size, overrides, need_data=False):
        seen["overrides"] = overrides
        raise _Stop

    monkeypatch.setattr(detector, "load_params", load_params)
    args = tflite._parser().parse_args([
        "--experiment", "mnasfpn_synthetic", "--random-weights", "--out",
        str(tmp_path / "m.tflite"), "--train-annotations", ann, "--train-images", images])
    with pytest.raises(_Stop):
        tflite._export(args)
    task = seen["overrides"][-1]["task"]
    assert task["model"]["num_classes"] == 2
    assert task["train_data"]["input_path"].endswith("train-?????-of-?????.tfrecord")


def test_bad_data_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNAS_TF_DATA", str(tmp_path / "cache"))
    code = tflite.main(["--experiment", "mnasfpn_synthetic", "--random-weights", "--out",
                        str(tmp_path / "m.tflite"), "--train-annotations",
                        str(tmp_path / "nope.json"), "--train-images", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "annotation file not found" in err
    assert len(err.strip().splitlines()) == 1
