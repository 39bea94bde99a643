"""The connectivity-based latency table: op enumeration, connectivity, pricing, storage, CLI."""

import json
import math

import numpy as np
import pytest

from latency.graph import counts, parse_key
from latency.lut import fidelity_metrics
from latency.ops import DetectorShape, detector_ops, head_ops, head_units, space_op_keys
from latency.table import LatencyPredictor, LatencyTable, MissingEntries
from mnas_tf.arch import BlockSpec, MnasFPNSpec, load_architecture
from mnas_tf.spaces import SPACES, MnasFPNSpace, get_space

SMALL = DetectorShape(input_size=(64, 64), num_classes=7)


def _spec(blocks, channels=48, repeats=2):
    return MnasFPNSpec(blocks=tuple(BlockSpec(**b) for b in blocks), channels=channels,
                       repeats=repeats, min_level=3, max_level=6)


FOUR_BLOCKS = [dict(inputs=(0, 1), level=3, expansion=32),
               dict(inputs=(1, 2), level=4, expansion=32),
               dict(inputs=(2, 3), level=5, expansion=32),
               dict(inputs=(3, 2), level=6, expansion=32)]


def test_enumeration_equals_the_converted_model():
    """Exactly the ops (multiset of keys) the converter emits for the head and predictor:
    a sampled cell with SE merges and an unused block, at 128x128. Both models come from
    `lut.detector_flatbuffer`, the conversion `build` and `fidelity` measure, so this also
    checks that the backbone subgraph a table measures is exactly the detector's."""
    from official.core import task_factory

    from latency.graph import read_ops
    from latency.lut import detector_flatbuffer
    from mnas_tf.experiment import load_experiment
    space, rng = MnasFPNSpace(), np.random.default_rng(1)
    while True:  # a whole (unpruned) cell with an unreached block and an SE merge
        it = iter(space.sample_decisions(rng))
        spec = space.run(lambda kind, name, valid: next(it))
        if len(spec.used_blocks()) < len(spec.blocks) and any(
                spec.blocks[i].merge == "se" for i in spec.used_blocks()):
            break
    params = load_experiment("mnasfpn_mobilenetv2_coco", [{"task": {"model": {
        "input_size": [128, 128, 3], "decoder": {"mnasfpn": {"architecture": spec.to_json()}}}}}])
    model = task_factory.get_task(params.task).build_model()
    converted = counts(read_ops(detector_flatbuffer(params, model=model)))
    backbone = detector_flatbuffer(params, backbone_only=True, model=model)
    for key, n in counts(read_ops(backbone)).items():
        converted[key] -= n
    converted = {k: v for k, v in converted.items() if v}
    parts = detector_ops(spec, DetectorShape.from_params(params))
    assert counts(parts["head"] + parts["predictor"]) == converted


def test_unused_blocks_contribute_nothing():
    base = _spec(FOUR_BLOCKS)
    # an extra level-4 block placed first is overridden by the later level-4 block
    extra = [dict(inputs=(0, 2), level=4, expansion=512, kernel=7)]
    shadowed = _spec(extra + [dict(b, inputs=tuple(i + 1 if i >= 4 else i for i in b["inputs"]))
                              for b in FOUR_BLOCKS])
    assert shadowed.used_blocks() == (1, 2, 3, 4)
    assert counts(head_ops(shadowed, SMALL)) == counts(head_ops(base, SMALL))


def test_residuals_fire_only_where_shapes_match():
    adds = lambda spec: sum(1 for u in head_units(spec, SMALL) if u[0] == "add")  # noqa: E731
    # C=48: cell 0 inputs at levels 3-5 have backbone widths (32/96/320): only P6 fires
    assert adds(_spec(FOUR_BLOCKS, channels=48, repeats=1)) == 1
    # C=32 equals MobileNetV2's C3 width: level 3 fires too
    assert adds(_spec(FOUR_BLOCKS, channels=32, repeats=1)) == 2
    # later cells take C-wide inputs everywhere
    assert adds(_spec(FOUR_BLOCKS, channels=48, repeats=3)) == 1 + 4 + 4


def _hand_value(key: str, overhead_us: float = 2.0) -> float:
    """A made-up entry: 1 ms for the backbone, 1 ns per output element for an op."""
    parsed = parse_key(key)
    return overhead_us + (1000.0 if parsed.op.startswith("SUBGRAPH") else
                          0.001 * math.prod(parsed.output))


def _hand_table(tmp_path, spec, shape, overhead_us=2.0, constant_us=500.0, drop=None):
    table = LatencyTable(str(tmp_path / "t.sqlite"), {"backend": "test"})
    keys = {str(k) for part in detector_ops(spec, shape).values() for k in part}
    rows = []
    for key in sorted(keys):
        if key == drop:
            continue
        value = _hand_value(key, overhead_us)
        rows.append((key, value, value, 0.0, 50))
    table.put(rows)
    table.set_meta("invoke_overhead_us", overhead_us)
    table.set_meta("constant_us", constant_us)
    return table


def test_prediction_is_the_hand_computed_sum(tmp_path):
    spec = _spec(FOUR_BLOCKS)
    table = _hand_table(tmp_path, spec, SMALL)
    ops = detector_ops(spec, SMALL)
    expected_us = 1000.0 + 500.0 + sum(0.001 * math.prod(k.output)
                                       for part in ("head", "predictor") for k in ops[part])
    prediction = LatencyPredictor(table, SMALL).predict(spec)
    assert prediction.total_ms == pytest.approx(expected_us / 1e3, rel=1e-9)
    assert prediction.parts_ms["backbone"] == pytest.approx(1.0)
    assert prediction.parts_ms["head"] == pytest.approx(
        sum(0.001 * math.prod(k.output) for k in ops["head"]) / 1e3)
    assert prediction.estimated_ops == 0


def test_missing_keys_are_errors_or_counted_estimates(tmp_path):
    spec = _spec(FOUR_BLOCKS)
    dropped = str(detector_ops(spec, SMALL)["head"][0])
    table = _hand_table(tmp_path, spec, SMALL, drop=dropped)
    with pytest.raises(MissingEntries, match="latency.lut build") as error:
        LatencyPredictor(table, SMALL).predict(spec)
    assert dropped in error.value.keys
    estimate = LatencyPredictor(table, SMALL, missing="estimate").predict(spec)
    occurrences = sum(1 for k in head_ops(spec, SMALL) if str(k) == dropped)
    assert estimate.estimated_ops == occurrences >= 1
    assert estimate.total_ms > 0


@pytest.mark.parametrize("name", [n for n in SPACES if n != "nasfpnlite_s"])
def test_the_one_pass_walk_prices_what_head_cells_prices(tmp_path, name):
    """`latency.walk` (the predictor's default) and the unit walk of `head_cells` give the
    same price for sampled architectures of every MnasFPN-family space, at two sizes."""
    for shape in (SMALL, DetectorShape()):
        space = get_space(name)
        table = LatencyTable(str(tmp_path / f"{name}{shape.input_size[0]}.sqlite"))
        keys = [shape.backbone_key(), *space_op_keys(space, shape)]
        # distinct values per key, so a unit priced at the wrong place shows
        table.put([(str(k), 1.0 + 0.37 * i, 0.0, 0.0, 1) for i, k in enumerate(keys)])
        fast, slow = LatencyPredictor(table, shape), LatencyPredictor(table, shape, fast=False)
        published = [load_architecture("mnasfpn")] if name == "mnasfpn" else []
        for spec in _sampled(space, 60, seed=11) + published:
            assert fast.predict(spec).total_ms == pytest.approx(slow.predict(spec).total_ms,
                                                                rel=1e-12)


def test_tables_persist_and_are_keyed_by_device(tmp_path):
    fingerprint = {"backend": "host", "cpu_model": "X", "threads": 1, "runtime": "1.0"}
    table = LatencyTable.for_device(fingerprint, str(tmp_path))
    table.put([("ADD|in=1x1x1x1,1x1x1x1|out=1x1x1x1|NONE|float32", 1.5, 1.5, 0.0, 50)])
    table.set_meta("constant_us", 12.0)
    again = LatencyTable.for_device({**fingerprint, "serial": "ignored"}, str(tmp_path))
    assert again.path == table.path and len(again) == 1 and again.constant_us == 12.0
    other = LatencyTable.for_device({**fingerprint, "threads": 2}, str(tmp_path))
    assert other.path != table.path and len(other) == 0
    with pytest.raises(Exception, match="another device"):
        LatencyTable(table.path, {"backend": "host", "cpu_model": "Y"})


def test_fidelity_metrics_on_known_values():
    m = fidelity_metrics([10.0, 20.0, 30.0, 40.0], [11.0, 19.0, 30.0, 48.0])
    assert m["n"] == 4
    assert m["r2"] == pytest.approx(1 - (1 + 1 + 0 + 64) / 500)
    assert m["within_10pct"] == pytest.approx(75.0)  # percent of architectures
    assert m["within_5pct"] == pytest.approx(50.0)  # the 0% and -5% ones
    assert m["mape"] == pytest.approx((10 + 5 + 0 + 20) / 4)
    assert m["kendall_tau"] == pytest.approx(1.0) and m["spearman"] == pytest.approx(1.0)
    assert m["worst_error_pct"] == pytest.approx(20.0)  # signed: over-predicted by 20%
    swapped = fidelity_metrics([10.0, 20.0, 30.0], [21.0, 9.0, 30.0])
    assert swapped["kendall_tau"] == pytest.approx(1 / 3) and swapped["spearman"] == 0.5
    assert swapped["worst_error_pct"] == pytest.approx(110.0)


def test_build_predict_and_fidelity_commands_end_to_end(tmp_path, capsys, monkeypatch,
                                                        tiny_tflite):
    """The CLI on the host at 128x128: `build` of a small MnasFPN space
    (`--space-overrides`: one C, one F, one kernel, two cells; sum and SE merges, so every
    op type of the space) converts and measures its single-op models for real and writes
    the table; a second build reuses it; `predict` prints the split; `fidelity` measures
    and compares. Whole models (backbone, calibration, fidelity) are the session's tiny
    real TFLite model: converting Model Garden detectors here took ~50 s, and
    `test_enumeration_equals_the_converted_model` converts them through the same
    `lut.detector_flatbuffer`."""
    from latency import lut
    models = []
    monkeypatch.setattr(lut, "detector_flatbuffer", lambda params, spec=None, **kw: (
        models.append(spec), open(tiny_tflite, "rb").read())[1])
    overrides = {"channels": [16], "expansions": [16], "kernels": [3], "repeats": 2}
    space = ["--space-overrides", json.dumps(overrides)]
    # (a loaded machine may probe > 25% apart a minute later, as CI's xdist neighbour
    # showed: the probe's refusal has its own tests in test_portable_tables.py)
    common = ["--input-size", "128", "128", "--table-dir", str(tmp_path), "--json",
              "--max-wait", "0", "--probe-tolerance", "100"]
    assert lut.main(["build", "--calibration", "1", *space, *common]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["entries"] == built["space_keys"] + 1
    assert built["measured_now"] == built["space_keys"] == 84 and built["space"] == "mnasfpn"
    assert built["calibrated_spaces"] == ["mnasfpn"] and math.isfinite(built["constant_us"])
    assert models[0] is None and len(models) == 2  # the backbone, one calibration model
    assert lut.main(["build", "--calibration", "1", *space, *common]) == 0
    assert json.loads(capsys.readouterr().out)["measured_now"] == 0 and len(models) == 2
    small = get_space("mnasfpn", **{k: tuple(v) if isinstance(v, list) else v
                                    for k, v in overrides.items()})
    spec = lut.sample_architectures(1, 3, small)[0]
    assert lut.main(["predict", spec.to_json(), *common]) == 0
    predicted = json.loads(capsys.readouterr().out)
    parts = predicted["parts_ms"]
    assert set(parts) >= {"backbone", "head", "predictor"} and parts["head"] > 0
    assert predicted["total_ms"] == pytest.approx(sum(parts.values()))
    assert predicted["table_info"].startswith(f"table {built['table']}")
    assert "built 20" in predicted["table_info"] and "UTC" in predicted["table_info"]
    assert lut.main(["predict", "mnasfpn", *common]) == 2  # the full space's ops: missing
    assert "latency.lut build" in capsys.readouterr().err
    assert lut.main(["fidelity", "--n", "2", "--seed", "5", *space, *common]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"r2", "mape", "within_10pct", "kendall_tau", "n"} <= set(result)
    assert result["n"] == 2 and len(result["measured_ms"]) == 2 and len(models) == 4
    assert {m.channels for m in models[1:]} == {16}  # drawn from the small space


def test_unknown_architecture_is_one_clear_line(tmp_path, capsys):
    from latency import lut
    code = lut.main(["predict", str(tmp_path / "nope.json"), "--table-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1


def test_published_cell_predicts_with_a_shipped_spec():
    spec = load_architecture("mnasfpn")
    units = head_units(spec, DetectorShape())
    assert sum(1 for u in units if u[0] == "block") == 5 * 4


def test_android_tables_are_filled_over_adb(fake_adb, tmp_path):
    """Single-op models pushed to the (fake) phone and timed with benchmark_model; the
    table is keyed by the phone's fingerprint."""
    from latency.lut import measure_ops
    from latency.measure import get_backend
    backend = get_backend("android")
    table = LatencyTable.for_device(backend.fingerprint(1), str(tmp_path))
    assert table.path.rsplit("/", 1)[-1].startswith("android-")
    assert table.meta("fingerprint")["model"] == "Pixel 4 XL"
    keys = head_ops(_spec(FOUR_BLOCKS), SMALL)[:3]
    assert measure_ops(table, keys, backend, threads=1, progress=False) == len(
        {str(k) for k in keys})
    assert table.get(keys[0]) == pytest.approx(1239807.0)  # the replayed summary, in us
    # three rounds per key; the replayed output is the same every time: no outliers
    assert sum("--graph=" in c for c in fake_adb.shell_commands()) == 3 * len(
        {str(k) for k in keys})


def _nasfpn_narrow():
    return load_architecture("nasfpn").replace(channels=16, repeats=2)


@pytest.mark.parametrize("architecture", [
    "mnasfpn_noexpand", "conn_search", "mnasfpn_nosdo", "nasfpnlite", _nasfpn_narrow])
def test_enumeration_equals_the_converted_head_for_every_family(architecture):
    """The decoder alone, converted from backbone-shaped feature inputs at 128x128: the
    enumerated head ops are exactly the converter's, for one spec of each cell family
    (NAS-FPN: the published levels 3-7 cell with full convs, and NAS-FPNLite)."""
    import tensorflow as tf

    from latency.graph import read_ops
    from mnas_tf.modeling.mnasfpn import MnasFPN
    spec = architecture() if callable(architecture) else load_architecture(architecture)
    shape = DetectorShape(input_size=(128, 128), num_classes=7)
    input_specs = {str(l): [1, 128 // 2 ** l, 128 // 2 ** l, c]
                   for l, c in shape.backbone_channels().items()}
    decoder = MnasFPN(input_specs, spec)
    tensor_specs = [tf.TensorSpec(v, tf.float32) for v in input_specs.values()]
    concrete = tf.function(lambda *xs: decoder(dict(zip(input_specs, xs)), training=False)) \
        .get_concrete_function(*tensor_specs)
    holder = tf.Module()
    holder.weights = list(decoder.weights)
    flatbuffer = tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder).convert()
    assert counts(read_ops(flatbuffer)) == counts(head_ops(spec, shape))


# ------------------------------------------------------------ every search space

# Keys per space at 320x320 (MobileNetV2, 91 classes); each equals the union of the ops of
# 3000 sampled architectures of that space, i.e. no key is measured that no child uses.
SPACE_KEYS_320 = {"mnasfpn": 630, "no_expand": 372, "conn_search": 565, "nasfpnlite_s": 62}
MID = DetectorShape(input_size=(128, 128), num_classes=7)


def _sampled(space, n, seed=0):
    """Architectures as the controller draws them (decision sequences)."""
    rng = np.random.default_rng(seed)
    return [space.decode(space.sample_decisions(rng)) for _ in range(n)]


def _priced_ops(spec, shape):
    parts = detector_ops(spec, shape)
    return parts["head"] + parts["predictor"]


@pytest.mark.parametrize("name", list(SPACES))
def test_space_op_keys_cover_every_architecture_of_the_space(name):
    """Every op of 30 architectures sampled from the space is one of its keys (the
    backbone is one subgraph entry, measured by `build` on its own)."""
    shape = DetectorShape()
    space = get_space(name)
    keys = space_op_keys(space, shape)
    assert len(keys) == len(set(keys)) == SPACE_KEYS_320[name]
    assert shape.backbone_key() not in keys
    keyset = set(keys)
    for spec in _sampled(space, 30):
        assert spec.family == space.family
        missing = [str(k) for k in _priced_ops(spec, shape) if k not in keyset]
        assert not missing, f"{spec.to_json()} needs {missing[:3]}"


def test_space_key_counts_follow_the_space_choices():
    """MnasFPN's keys are a fixed set (tables built before stay complete); each other
    space adds what only it has, and one table holds their union."""
    shape = DetectorShape()
    keys = {name: set(space_op_keys(get_space(name), shape)) for name in SPACES}
    only = {name: {k.op for k in keys[name] - keys["mnasfpn"]} for name in SPACES}
    assert only["nasfpnlite_s"] >= {"REDUCE_MAX"}  # attention gates
    assert not {k for k in keys["conn_search"] if k.op == "MEAN"}  # sum merges only: no SE
    unfused_adds = {k for k in keys["conn_search"] - keys["mnasfpn"]}
    assert unfused_adds and all(k.op == "ADD" and k.activation == "NONE"
                                for k in unfused_adds)  # 3-4 input sums
    assert {k.inputs[0][-1] for k in keys["no_expand"] - keys["mnasfpn"]
            if k.op == "DEPTHWISE_CONV_2D"} == {48, 80}  # F = C where C is no F choice
    assert len(set().union(*keys.values())) == 724
    # a narrower space is a subset with fewer keys
    narrow = set(space_op_keys(get_space("mnasfpn", channels=(16,), kernels=(3,)), shape))
    assert narrow < keys["mnasfpn"] and len(narrow) < len(keys["mnasfpn"]) // 1.5


@pytest.mark.parametrize("name", list(SPACES))
def test_space_op_keys_are_tight_on_a_small_space(name):
    """On a small version of each space, 200 sampled architectures together use every
    key: the enumeration asks the device for nothing a child cannot contain."""
    # 32 = MobileNetV2's C3
    overrides = dict(channels=(16, 32), intermediate_blocks=1, repeats=2)
    if name != "nasfpnlite_s":
        overrides.update(expansions=(16, 64), kernels=(3, 5))
    space = get_space(name, **overrides)
    used = {k for spec in _sampled(space, 200) for k in _priced_ops(spec, MID)}
    assert used == set(space_op_keys(space, MID))


class _FakeDevice:
    """A device for `lut.build` without TFLite: a "model" is the text of its op keys (see
    `_fake_converters`); one invoke costs 2 us, each op its `_hand_value`, and a whole
    detector 300 us more (what calibration must find)."""

    def __init__(self, probe_us=800.0):
        self.models, self.probe_us = 0, probe_us

    def fingerprint(self, threads=1):
        return {"backend": "fake", "threads": threads}

    def measure(self, path, threads=1, warmup=10, runs=50):
        from latency.measure import LatencyResult
        data = open(path, "rb").read()
        if data[4:8] == b"TFL3":  # the speed probe, a real flatbuffer
            us = self.probe_us
        else:
            self.models += 1
            lines = data.decode().split("\n")
            us = 2.0 + sum(_hand_value(k, 0.0) for k in lines[1:]) + \
                (300.0 if lines[0] == "detector" else 0.0)
        return LatencyResult(median_ms=us / 1e3, mean_ms=us / 1e3, std_ms=0.0, p5_ms=None,
                             p95_ms=None, min_ms=None, max_ms=None, runs=runs,
                             warmup_runs=warmup, backend="fake", device={})


def _fake_converters(monkeypatch, shape):
    """Single-op and detector "flatbuffers" as text, so a build runs in pure Python."""
    from latency import lut, microbench

    def detector(params, spec=None, backbone_only=False, quant="float32"):
        ops = [shape.backbone_key()] if backbone_only else \
            [op for part in detector_ops(spec, shape).values() for op in part]
        return "\n".join(["backbone" if backbone_only else "detector", *map(str, ops)]).encode()
    monkeypatch.setattr(microbench, "single_op_models",
                        lambda keys, seed=0: [f"op\n{k}".encode() for k in keys])
    monkeypatch.setattr(lut, "detector_flatbuffer", detector)


def test_one_table_is_built_for_every_space_and_prices_them_all(tmp_path, monkeypatch):
    """Building the spaces one after another into one device table measures only the keys
    it lacks; the constant is fitted on every space built in; then sampled architectures
    of all four spaces are priced from table entries alone."""
    from latency import lut
    _fake_converters(monkeypatch, MID)
    device = _FakeDevice()
    table = LatencyTable.for_device(device.fingerprint(1), str(tmp_path))
    known: set = set()
    for i, name in enumerate(SPACES):
        space = get_space(name)
        assert not lut.table_ready(table, MID, space)
        keys = set(space_op_keys(space, MID))
        built = lut.build(table, None, MID, device, 1, calibration=2, progress=False,
                          space=space)
        assert built["measured_now"] == len(keys - known) and built["space"] == name
        assert built["calibrated_spaces"] == list(SPACES)[:i + 1]
        known |= keys
        assert lut.table_ready(table, MID, space) and len(table) == len(known) + 1
    assert table.constant_us == pytest.approx(302.0, abs=1.0)
    models = device.models
    again = lut.build(table, None, MID, device, 1, calibration=2, progress=False,
                      space=get_space("conn_search"))
    assert again["measured_now"] == 0 and device.models == models  # models are cached too
    predictor = LatencyPredictor(table, MID)
    for name in SPACES:
        for spec in _sampled(get_space(name), 30, seed=7):
            prediction = predictor.predict(spec)
            assert prediction.estimated_ops == 0 and prediction.total_ms > 1.3


def test_search_builds_the_table_for_its_configured_space(tmp_path, monkeypatch):
    """`latency.source: lut` with space conn_search: the driver builds that space's keys
    into the device table once, then prices conn_search children from it."""
    from latency import lut, measure
    from search import objectives
    from search.config import load_config
    device = _FakeDevice()
    monkeypatch.setattr(measure, "get_backend", lambda name, **kwargs: device)
    config = load_config(None, {"space": "conn_search", "latency": {
        "input_size": 128, "table_dir": str(tmp_path)}})
    _, shape = lut.load_shape(config.latency.experiment, (128, 128))
    _fake_converters(monkeypatch, shape)
    space = get_space("conn_search")
    price = objectives.latency_predictor(config, space, progress=False)
    table = lut.device_table(device, 1, str(tmp_path))
    assert lut.table_ready(table, shape, space)
    assert not lut.table_ready(table, shape, get_space("nasfpnlite_s"))
    assert all(price(spec.to_dict()) > 1.3 for spec in _sampled(space, 10))
    models = device.models
    objectives.latency_predictor(config, space, progress=False)  # ready: nothing measured
    assert device.models == models


def test_search_measures_the_ops_its_references_need_beyond_its_space(tmp_path, monkeypatch):
    """The published cell is outside space no_expand (it expands): the driver measures the
    ops of it that the space's table lacks, so the reference is priced like a child."""
    from latency import lut, measure
    from latency.table import MissingEntries
    from mnas_tf.arch import load_architecture
    from mnas_tf.spaces import canonical_dict
    from search import objectives
    from search.config import load_config
    device = _FakeDevice()
    monkeypatch.setattr(measure, "get_backend", lambda name, **kwargs: device)
    config = load_config(None, {"space": "no_expand", "latency": {
        "input_size": 128, "table_dir": str(tmp_path)}})
    _, shape = lut.load_shape(config.latency.experiment, (128, 128))
    _fake_converters(monkeypatch, shape)
    space, published = get_space("no_expand"), load_architecture("mnasfpn")
    plain = objectives.latency_predictor(config, space, progress=False)
    with pytest.raises(MissingEntries):
        plain(canonical_dict(published))
    models = device.models
    price = objectives.latency_predictor(config, space, False, [published])
    assert device.models > models and price(canonical_dict(published)) > 1.3
    models = device.models
    objectives.latency_predictor(config, space, False, [published])  # all there now
    assert device.models == models


def test_search_prices_int8_children_from_an_int8_table(tmp_path, monkeypatch):
    """`latency.quant: int8`: the search's table is the device's int8 table, its entries
    are int8 ops (the outputs' DEQUANTIZE included), and the float table is untouched."""
    from latency import lut, measure
    from search import objectives
    from search.config import load_config
    device = _FakeDevice()
    monkeypatch.setattr(measure, "get_backend", lambda name, **kwargs: device)
    config = load_config(None, {"space": "nasfpnlite_s", "latency": {
        "input_size": 128, "table_dir": str(tmp_path), "quant": "int8"}})
    _, shape = lut.load_shape(config.latency.experiment, (128, 128), "int8")
    _fake_converters(monkeypatch, shape)
    space = get_space("nasfpnlite_s")
    price = objectives.latency_predictor(config, space, progress=False)
    table = lut.device_table(device, 1, str(tmp_path), quant="int8")
    assert table.meta("fingerprint")["quant"] == "int8" and lut.table_ready(table, shape, space)
    entries = [parse_key(k) for k in table._entries]  # pylint: disable=protected-access
    assert {k.dtype for k in entries} == {"int8"} and "DEQUANTIZE" in {k.op for k in entries}
    assert len(lut.device_table(device, 1, str(tmp_path))) == 0
    assert all(price(spec.to_dict()) > 1.3 for spec in _sampled(space, 5))


@pytest.mark.parametrize("argv, needle", [
    (["build", "--space", "fpn"], "unknown search space 'fpn'; valid spaces are mnasfpn, "
                                  "no_expand, conn_search, nasfpnlite_s"),
    (["build", "--space-overrides", "{channels: 16}"], "--space-overrides is not valid JSON"),
    (["fidelity", "--space-overrides", '{"kernel": [3]}'], "valid settings are family"),
])
def test_bad_space_arguments_are_one_clear_line(tmp_path, capsys, argv, needle):
    from latency import lut
    assert lut.main([*argv, "--table-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and err.startswith("error:") and len(err.splitlines()) == 1
