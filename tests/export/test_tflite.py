"""The raw-output detector converts to float TFLite and matches Keras."""

import numpy as np
import pytest
import tf_keras

from export.tflite import ExportError, convert_float, export_verified_float, max_abs_diff
from mnas_tf.modeling.factory import build_raw_detector


def test_published_detector_converts_and_matches_keras(reference_model, tmp_path,
                                                     scramble_weights):
    raw = build_raw_detector(reference_model, (320, 320))
    scramble_weights(raw)
    result = export_verified_float(raw, str(tmp_path / "mnasfpn.tflite"), tolerance=1e-4)
    assert result["max_abs_diff"] <= 1e-4
    assert (tmp_path / "mnasfpn.tflite").stat().st_size == result["bytes"]
    image = np.random.default_rng(1).uniform(-1, 1, (1, 320, 320, 3)).astype(np.float32)
    outputs = raw(image, training=False)
    assert float(np.std(outputs["raw_scores"])) > 0.1  # a meaningful comparison
    flatbuffer = (tmp_path / "mnasfpn.tflite").read_bytes()
    assert max_abs_diff(flatbuffer, raw, image) <= 1e-4


def test_dynamic_batch_is_refused():
    inp = tf_keras.Input((8, 8, 3))
    model = tf_keras.Model(inp, tf_keras.layers.Conv2D(2, 1)(inp))
    with pytest.raises(ExportError, match="must be fully static"):
        convert_float(model)
