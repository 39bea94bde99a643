"""Every baseline and cell family converts to float TFLite with outputs equal to Keras.

Small inputs (128x128) and 7 class slots keep conversions fast; the architectures are the
shipped ones (the published NAS-FPN cell is narrowed to C=16, one repeat).
"""

import numpy as np
import pytest
from official.core import task_factory

from weight_scramble import scramble_weights
from export.tflite import convert_float, max_abs_diff
from mnas_tf.arch import load_architecture
from mnas_tf.experiment import load_experiment
from mnas_tf.modeling.factory import build_raw_detector

SIZE = 128
NASFPN_NARROW = load_architecture("nasfpn").replace(channels=16, repeats=1).to_json()
CASES = {
    "no_sdo": ("configs/experiments/mnasfpn_nosdo_mobilenetv2.yaml", {}),
    "no_expand": ("configs/experiments/mnasfpn_noexpand_mobilenetv2.yaml", {}),
    "conn_search": ("configs/experiments/conn_search_mobilenetv2.yaml", {}),
    "nasfpnlite": ("nasfpnlite_mobilenetv2", {}),
    "nasfpn_levels_3_7": ("nasfpnlite_mobilenetv2", {
        "max_level": 7, "decoder": {"mnasfpn": {"architecture": NASFPN_NARROW}}}),
    "ssdlite": ("ssdlite_mobilenetv2", {}),
    "fpnlite": ("fpnlite_mobilenetv2", {"head": {"num_filters": 32}}),
    "mnasfpn_mobilenetv3": ("mnasfpn_mobilenetv3", {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_family_converts_and_matches_keras(case):
    experiment, model_overrides = CASES[case]
    params = load_experiment(experiment, [{"task": {"model": {
        "input_size": [SIZE, SIZE, 3], "num_classes": 7, **model_overrides}}}])
    raw = build_raw_detector(task_factory.get_task(params.task).build_model(), (SIZE, SIZE))
    scramble_weights(raw)
    image = np.random.default_rng(1).uniform(-1, 1, (1, SIZE, SIZE, 3)).astype(np.float32)
    assert float(np.std(raw(image, training=False)["raw_scores"])) > 0.05  # a meaningful comparison
    assert max_abs_diff(convert_float(raw), raw, image) <= 1e-4
