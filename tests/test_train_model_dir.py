"""Resuming a --model-dir: a checkpoint of another model is refused up front, while
post-processing settings (no weights) may change, as QAT exports with and without TFLite
NMS fine-tune into one directory."""

import pytest
import yaml

from mnas_tf.experiment import ConfigError, load_experiment
from mnas_tf.train import check_model_dir


def _model_dir(tmp_path, params):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.as_dict()))
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    return str(tmp_path)


def test_nms_settings_may_change_but_the_model_may_not(tmp_path):
    saved = load_experiment("mnasfpn_synthetic")
    model_dir = _model_dir(tmp_path, saved)
    nms = load_experiment("mnasfpn_synthetic", [{"task": {"model": {"detection_generator": {
        "nms_version": "tflite", "pre_nms_score_threshold": 0.01}}}}])
    check_model_dir(nms, model_dir)  # same weights: resumable
    other = load_experiment("mnasfpn_synthetic", [
        {"task": {"model": {"decoder": {"mnasfpn": {"architecture": "conn_search"}}}}}])
    with pytest.raises(ConfigError, match="task.model.decoder.mnasfpn.architecture"):
        check_model_dir(other, model_dir)
