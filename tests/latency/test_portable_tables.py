"""Tables that know their device: the speed probe, thread counts, int8, phones over adb."""

import json
import os

import pytest

from latency.probe import probe_flatbuffer, probe_mismatch
from latency.table import LatencyTable, TableMismatch

FINGERPRINT = {"backend": "host", "cpu_model": "AMD EPYC", "threads": 1, "runtime": "1.0",
               "quant": "float32"}
ROW = ("ADD|in=1x1x1x1,1x1x1x1|out=1x1x1x1|NONE|float32", 1.5, 1.5, 0.0, 50)


def _built(root, probe_us=1000.0):
    table = LatencyTable.for_device(FINGERPRINT, str(root), probe_us)
    table.put([ROW])
    return table


def test_same_cpu_name_at_another_speed_is_refused_or_rebuilt(tmp_path):
    """A machine with the same fingerprint but a 3x slower probe never reuses the table:
    refused with one line naming both probes, or (rebuild) moved aside for a fresh one."""
    table = _built(tmp_path)
    same = LatencyTable.for_device(FINGERPRINT, str(tmp_path), 1100.0)  # within 25%
    assert same.path == table.path and len(same) == 1
    with pytest.raises(TableMismatch) as error:
        LatencyTable.for_device(FINGERPRINT, str(tmp_path), 3000.0)
    message = str(error.value)
    assert "1000 us" in message and "3000 us" in message and "3.00x" in message
    assert len(message.splitlines()) == 1
    fresh = LatencyTable.for_device(FINGERPRINT, str(tmp_path), 3000.0, rebuild=True)
    assert fresh.path == table.path and len(fresh) == 0
    assert fresh.meta("speed_probe_us") == 3000.0 and "3.00x" in fresh.meta("replaced")["reason"]
    stale = fresh.meta("replaced")["stale"]
    assert os.path.exists(stale) and len(LatencyTable(stale)) == 1  # kept, not deleted
    # a looser tolerance accepts the difference
    assert LatencyTable.for_device(FINGERPRINT, str(tmp_path), 1000.0,
                                   tolerance=5.0).path == table.path


def test_probe_model_and_mismatch_rule():
    from latency.graph import read_ops
    ops = read_ops(probe_flatbuffer())
    assert [k.op for k in ops] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert probe_flatbuffer() == probe_flatbuffer()  # byte for byte the same model
    assert not probe_mismatch(1000, 1200) and probe_mismatch(1000, 1300)
    assert probe_mismatch(1300, 1000)  # a faster machine is a mismatch too


def test_predict_refuses_a_mismatched_table_in_one_line(tmp_path, monkeypatch, capsys):
    from latency import lut, probe
    from latency.host import HostBackend
    fingerprint = {**HostBackend().fingerprint(1), "quant": "float32"}
    LatencyTable.for_device(fingerprint, str(tmp_path), 500.0).put([ROW])
    monkeypatch.setattr(probe, "measure_probe", lambda backend, threads: 2000.0)
    assert lut.main(["predict", "mnasfpn", "--table-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not reusing it" in err and len(err.splitlines()) == 1


def test_tables_for_one_and_two_threads(tmp_path):
    """Each thread count has its own table, probed at that count; more threads than this
    host's cores is refused."""
    from latency import lut
    from latency.host import HostBackend
    backend = HostBackend()
    one = lut.device_table(backend, 1, str(tmp_path))
    two = lut.device_table(backend, 2, str(tmp_path))
    assert one.path != two.path
    assert one.meta("fingerprint")["threads"] == 1 and two.meta("fingerprint")["threads"] == 2
    assert two.meta("speed_probe_us") > 0
    int8 = lut.device_table(backend, 2, str(tmp_path), quant="int8")
    assert int8.path not in (one.path, two.path)
    with pytest.raises(Exception, match="cores"):
        lut.device_table(backend, (os.cpu_count() or 1) + 1, str(tmp_path))


def test_int8_single_op_models_are_full_integer():
    """int8 keys (the export's full-integer ops, incl. the outputs' DEQUANTIZE) convert to
    single-op models holding exactly those keys."""
    from latency.microbench import single_op_models
    from latency.graph import read_ops
    from latency.ops import DetectorShape, space_op_keys
    from mnas_tf.spaces import get_space
    shape = DetectorShape(input_size=(64, 64), num_classes=3, dtype="int8")
    keys = space_op_keys(get_space("mnasfpn", channels=(16,), expansions=(16,), kernels=(3,),
                                   repeats=1), shape)
    pick = {}
    for key in keys:
        pick.setdefault(key.op, key)
    assert {"DEQUANTIZE", "CONV_2D", "MEAN", "CONCATENATION"} <= set(pick)
    models = single_op_models(list(pick.values()))
    for key, model in zip(pick.values(), models):
        assert read_ops(model) == [key] and key.dtype == "int8"


def test_phone_probe_load_calibration_and_fidelity_over_adb(fake_adb, tmp_path, monkeypatch,
                                                             fake_tflite):
    """Over the (fake) adb: the speed probe runs benchmark_model on the phone, the load is
    read from the phone's /proc (a busy phone is warned about), and calibration and
    fidelity measure whole models there."""
    from latency import lut
    from latency.measure import get_backend
    from latency.ops import detector_ops
    from test_lut import _hand_value, _spec, FOUR_BLOCKS, SMALL
    from mnas_tf.spaces import get_space
    backend = get_backend("android")
    table = lut.device_table(backend, 1, str(tmp_path))
    assert table.meta("speed_probe_us") > 0 and table.path.rsplit("/", 1)[-1].startswith("android")
    probes = [c for c in fake_adb.shell_commands() if "--graph=" in c]
    assert len(probes) == 1 and "--num_threads=1" in probes[0]
    fake_adb.set(load_cores=2.5)  # other apps busy on 2.5 of the 8 cores
    messages = []
    monitor = lut.load_monitor(backend, wait_s=0.0, log=messages.append)
    monitor.settle("the table build")
    assert monitor.cpus == 8 and messages and "2.50 of 8 cores" in messages[0]

    space = get_space("mnasfpn", channels=(48,), expansions=(32,), kernels=(3,), repeats=2)
    specs = lut.sample_architectures(40, lut.CALIBRATION_SEED, space) + [_spec(FOUR_BLOCKS)]
    keys = {str(k) for s in specs for part in detector_ops(s, SMALL).values() for k in part}
    table.put([(k, _hand_value(k), _hand_value(k), 0.0, 50) for k in sorted(keys)])
    table.set_meta("invoke_overhead_us", 2.0)
    monkeypatch.setattr(lut, "CALIBRATION_CANDIDATES", 40)
    monkeypatch.setattr(lut, "detector_flatbuffer", lambda params, spec=None, **kw:
                        open(fake_tflite, "rb").read())
    fitted = lut.calibrate(table, None, SMALL, backend, 1, 3, progress=False, space=space)
    assert fitted.n == 3 and len(table.meta("calibration_models")) == 3
    runs = [c for c in fake_adb.shell_commands() if "--graph=" in c]
    assert len(runs) == 1 + 3 * lut.ROUNDS  # the probe, then 3 rounds of each model
    result = lut.fidelity(table, None, SMALL, backend, 1, 2, seed=5, progress=False,
                          space=space, monitor=monitor)
    assert result["n"] == 2 and result["measured_ms"] == [pytest.approx(1239.807)] * 2
    assert {"within_5pct", "spearman", "worst_error_pct"} <= set(result["old"])
    assert result["load"]["warnings"] >= 2
    json.dumps(result)


def test_a_build_keeps_the_faster_of_its_two_probes(tmp_path, monkeypatch):
    """A probe taken while another job held the CPU reads slow; the build probes again at
    its end and keeps the faster, so the quiet machine later is not refused its table."""
    from latency import lut, probe
    from latency.host import HostBackend
    fingerprint = {**HostBackend().fingerprint(1), "quant": "float32"}
    table = LatencyTable.for_device(fingerprint, str(tmp_path), 3000.0)
    monkeypatch.setattr(probe, "measure_probe", lambda backend, threads: 1000.0)
    lut._refresh_probe(table, HostBackend(), 1)
    assert table.meta("speed_probe_us") == 1000.0
    monkeypatch.setattr(probe, "measure_probe", lambda backend, threads: 5000.0)
    lut._refresh_probe(table, HostBackend(), 1)
    assert table.meta("speed_probe_us") == 1000.0  # a slower probe later changes nothing
