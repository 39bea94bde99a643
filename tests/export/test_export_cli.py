"""`python -m export.tflite`: each quantization, NMS signature, checkpoints, errors."""

import json

import numpy as np
import pytest

from export import tflite

SMALL = ["--experiment", "mnasfpn_mobilenetv2_coco", "--input-size", "128", "128"]
RANDOM = ["--random-weights"]  # an export without --checkpoint must say so


def _export(argv, capsys):
    assert tflite.main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("quant", ["float32", "float16"])
def test_float_exports_verify_against_keras(quant, tmp_path, capsys):
    out = tmp_path / f"{quant}.tflite"
    info = _export(SMALL + RANDOM + ["--quant", quant, "--out", str(out)], capsys)
    assert out.stat().st_size == info["bytes"]
    assert info["outputs"] == [[1, 3060, 4], [1, 3060, 91]]  # (256+64+16+4) * 9 anchors
    assert info["ops"]["CONV_2D"] > 50 and "DEPTHWISE_CONV_2D" in info["ops"]
    if quant == "float32":
        assert info["max_abs_diff"] <= 1e-4
    else:  # half-precision weights: about half the bytes
        assert info["bytes"] < 0.6 * (2.46e6 * 4)


def test_int8_export_calibrates_on_training_images_and_runs(tiny_dataset, tmp_path, capsys):
    d = tiny_dataset
    out = tmp_path / "int8.tflite"
    info = _export(["--experiment", "mnasfpn_synthetic", "--input-size", "128", "128",
                    "--params-override", f"task.train_data.input_path={d.train_records}",
                    "--quant", "int8", "--calibration-images", "8", "--out", str(out), *RANDOM],
                   capsys)
    assert "QUANTIZE" in info["ops"] or "DEQUANTIZE" in info["ops"]
    assert info["outputs"] == [[1, 3060, 4], [1, 3060, 7]]
    assert info["bytes"] < 0.4 * (2.46e6 * 4)  # int8 weights
    from mnas_tf.data import shapes
    assert info["labels"] == ["???", *shapes.NAMES]  # class i's name, 0 = background
    with open(info["label_map"]) as f:
        assert f.read().splitlines() == info["labels"]


def test_nms_export_has_the_object_detector_signature_and_scores(tiny_dataset, tmp_path,
                                                                capsys):
    d = tiny_dataset
    out = tmp_path / "nms.tflite"
    info = _export(SMALL + RANDOM + ["--postprocess", "nms", "--out", str(out)], capsys)
    assert "TFLite_Detection_PostProcess" in info["ops"]
    shapes = sorted(info["outputs"], key=len)  # LiteRT's output order is not fixed
    count, classes, scores, boxes = shapes
    assert count == [1] and classes == scores and len(classes) == 2
    assert boxes == classes + [4]
    # the shipped model is scored by Model Garden's COCO evaluator on a val split
    from export.detector import TFLITE_NMS, load_params
    from export.evaluate import evaluate_tflite
    params = load_params("mnasfpn_mobilenetv2_coco", (128, 128), [TFLITE_NMS, {"task": {
        "validation_data": {"input_path": d.val_records}, "annotation_file": d.val_annotations,
        "model": {"detection_generator": {"tflite_post_processing": {
            "nms_score_threshold": 0.001}}}}}])
    metrics = evaluate_tflite(out.read_bytes(), params, max_images=4, progress=False)
    assert set(metrics) >= {"AP", "AP50", "APs"}
    # images with more detections than the first one (Model Garden's COCO conversion takes
    # the first image's width for every image): each keeps the model's rows
    from export import evaluate
    real, counts = evaluate._detections, iter([1, 3, 2, 4])

    def fewer_first(*args):
        det = real(*args)
        return {**det, "count": np.array([min(next(counts), int(det["count"][0]))])}

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(evaluate, "_detections", fewer_first)
    try:
        assert set(evaluate_tflite(out.read_bytes(), params, max_images=4,
                                   progress=False)) >= {"AP", "AP50"}
    finally:
        monkeypatch.undo()
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("AP", "AP50"))


def test_missing_checkpoint_is_one_clear_line(tmp_path, capsys):
    argv = SMALL + ["--checkpoint", str(tmp_path / "nothing"), "--out", str(tmp_path / "m.tflite")]
    assert tflite.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no checkpoint found at") and len(err.splitlines()) == 1
    assert not (tmp_path / "m.tflite").exists()


def test_qat_finetunes_then_exports_full_int8(tiny_dataset, tmp_path, capsys):
    """QAT from a float checkpoint: fine-tune with Model Garden's trainer, convert, and
    every conv of the TFLite model runs in int8."""
    import tensorflow as tf
    from official.core import task_factory

    from export.detector import load_params
    d = tiny_dataset
    data = (f"task.train_data.input_path={d.train_records},"
            f"task.train_data.global_batch_size=2")
    params = load_params("mnasfpn_synthetic", (128, 128))
    float_dir = tmp_path / "float"
    tf.train.Checkpoint(model=task_factory.get_task(params.task).build_model()).save(
        str(float_dir / "ckpt"))
    out = tmp_path / "qat.tflite"
    info = _export(["--experiment", "mnasfpn_synthetic", "--input-size", "128", "128",
                    "--params-override", data, "--checkpoint", str(float_dir),
                    "--quant", "qat", "--qat-steps", "1", "--out", str(out)], capsys)
    assert (tmp_path / "qat_qat" / "ckpt-1.index").exists()  # the resumable fine-tuning
    assert info["outputs"] == [[1, 3060, 4], [1, 3060, 7]]
    assert tflite.float_convs(out.read_bytes()) == 0
    assert info["bytes"] < 0.4 * (2.46e6 * 4)  # int8 weights


def test_export_console_is_quiet(tmp_path, console_noise):
    """The CLI as a user runs it: the JSON report and nothing from TensorFlow, the
    converter or LiteRT, which write to descriptor 2 from C++."""
    import subprocess
    import sys
    argv = [sys.executable, "-m", "export.tflite", "--experiment", "mnasfpn_synthetic",
            "--input-size", "64", "64", *RANDOM, "--out", str(tmp_path / "m.tflite")]
    quiet = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    text = quiet.stdout + quiet.stderr
    assert not [n for n in console_noise if n in text], text[-3000:]
    assert quiet.stderr.strip() == "" and len(quiet.stdout.strip().splitlines()) == 1
    assert json.loads(quiet.stdout)["bytes"] > 0
