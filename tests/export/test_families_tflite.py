"""Every cell family and the new baseline detectors convert to float TFLite with outputs
equal to Keras.

Cell families are converted as decoders alone (feature inputs shaped like MobileNetV2's
levels at 128x128): the backbone and predictor are the same for all of them and converting
them again per family would only cost time. SSDLite and NAS-FPNLite are converted whole.
Small inputs and 7 class slots keep conversions fast; the published NAS-FPN cell is
narrowed to C=16, one repeat.
"""

import numpy as np
import pytest
import tensorflow as tf
from official.core import task_factory

from export.tflite import convert_float, max_abs_diff
from mnas_tf.arch import load_architecture
from mnas_tf.experiment import load_experiment
from mnas_tf.modeling.factory import build_raw_detector

SIZE = 128
NASFPN_NARROW = load_architecture("nasfpn").replace(channels=16, repeats=1)
DETECTORS = {"nasfpnlite": "nasfpnlite_mobilenetv2", "ssdlite": "ssdlite_mobilenetv2"}


@pytest.mark.parametrize("architecture", [
    "mnasfpn_nosdo", "mnasfpn_noexpand", "conn_search", "nasfpnlite", NASFPN_NARROW],
    ids=["no_sdo", "no_expand", "conn_search", "nasfpnlite", "nasfpn_levels_3_7"])
def test_cell_family_decoder_converts_and_matches_keras(architecture, scramble_weights):
    from ai_edge_litert.interpreter import Interpreter

    from mnas_tf.modeling.mnasfpn import MnasFPN
    specs = {str(l): [1, SIZE // 2 ** l, SIZE // 2 ** l, c]
             for l, c in zip((3, 4, 5), (32, 96, 320))}
    decoder = MnasFPN(specs, architecture)
    scramble_weights(decoder)
    rng = np.random.default_rng(1)
    features = {k: rng.normal(size=v).astype(np.float32) for k, v in specs.items()}
    concrete = tf.function(lambda *xs: decoder(dict(zip(specs, xs)), training=False)) \
        .get_concrete_function(*[tf.TensorSpec(v, tf.float32) for v in specs.values()])
    holder = tf.Module()
    holder.weights = list(decoder.weights)
    interpreter = Interpreter(model_content=tf.lite.TFLiteConverter.from_concrete_functions(
        [concrete], holder).convert())
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        level = next(k for k, v in specs.items() if list(detail["shape"]) == v)
        interpreter.set_tensor(detail["index"], features[level])
    interpreter.invoke()
    expected = {tuple(v.shape): v.numpy() for v in decoder(features, training=False).values()}
    outputs = interpreter.get_output_details()
    assert len(outputs) == len(expected)
    for detail in outputs:
        got = interpreter.get_tensor(detail["index"])
        want = expected[tuple(got.shape)]
        assert float(np.std(want)) > 0.1
        np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("case", sorted(DETECTORS))
def test_baseline_detector_converts_and_matches_keras(case, scramble_weights):
    params = load_experiment(DETECTORS[case], [{"task": {"model": {
        "input_size": [SIZE, SIZE, 3], "num_classes": 7}}}])
    raw = build_raw_detector(task_factory.get_task(params.task).build_model(), (SIZE, SIZE))
    scramble_weights(raw)
    image = np.random.default_rng(1).uniform(-1, 1, (1, SIZE, SIZE, 3)).astype(np.float32)
    assert float(np.std(raw(image, training=False)["raw_scores"])) > 0.05
    assert max_abs_diff(convert_float(raw), raw, image) <= 1e-4


QAT_FAMILIES = ["ssdlite_mobilenetv2", "fpnlite_mobilenetv2", "nasfpnlite_mobilenetv2"]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("experiment", QAT_FAMILIES)
def test_baseline_quantization_aware_detector_converts_to_full_int8(experiment):
    """Every family gets quantization-aware training: the QAT model keeps the float
    weights (FPN: as Model Garden's QAT copies them), and its TFLite conversion runs every
    conv in int8 (the export's check), so `--quant qat` works for it like for MnasFPN."""
    from export.tflite import convert, float_convs, op_counts
    from mnas_tf.modeling.quantize import is_quantizer_variable, quantize_detector
    params = load_experiment(experiment, [{"task": {"model": {
        "input_size": [SIZE, SIZE, 3], "num_classes": 7}}}])
    model = task_factory.get_task(params.task).build_model()
    qat = quantize_detector(model)

    def fingerprint(weights):  # the layer order may differ after quantize_apply
        return sorted((tuple(w.shape), round(float(np.sum(w.numpy())), 3)) for w in weights)
    # Model Garden's FPN keeps Model Garden's own QAT weight copy (see quantize_functional)
    parts = ("backbone", "head") if experiment.startswith("fpnlite") else (
        "backbone", "decoder", "head")
    for part in parts:
        kept = [w for w in getattr(qat, part).weights if not is_quantizer_variable(w)]
        assert fingerprint(kept) == fingerprint(getattr(model, part).weights), part
    for part in ("backbone", "decoder", "head"):
        assert any(is_quantizer_variable(w) for w in getattr(qat, part).weights), part
    flatbuffer = convert(build_raw_detector(qat, (SIZE, SIZE)), "qat")
    ops = op_counts(flatbuffer)
    assert ops["CONV_2D"] > 10 and float_convs(flatbuffer) == 0, ops
