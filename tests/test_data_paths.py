"""`synthetic://SPLIT` inputs resolve to the cached embedded dataset."""

import glob

import pytest

from mnas_tf.data_paths import resolve_data_paths
from mnas_tf.experiment import load_experiment


def test_synthetic_experiment_resolves_to_real_files(tmp_path, monkeypatch):
    monkeypatch.setenv("MNAS_TF_DATA", str(tmp_path))
    params = resolve_data_paths(load_experiment("mnasfpn_synthetic"), progress=False)
    task = params.task
    assert str(tmp_path) in task.train_data.input_path
    assert len(glob.glob(task.train_data.input_path)) >= 1
    assert len(glob.glob(task.validation_data.input_path)) >= 1
    assert task.annotation_file.endswith("val.json")


def test_coco_experiment_is_left_alone():
    params = load_experiment("mnasfpn_mobilenetv2_coco")
    assert resolve_data_paths(params).task.train_data.input_path == "coco/train*"


def test_unknown_split_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MNAS_TF_DATA", str(tmp_path))
    params = load_experiment("mnasfpn_synthetic", [{"task": {"train_data": {
        "input_path": "synthetic://tran"}}}])
    with pytest.raises(ValueError, match="unknown synthetic split 'synthetic://tran'"):
        resolve_data_paths(params, progress=False)
