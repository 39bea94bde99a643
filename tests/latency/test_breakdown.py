"""The backbone / head / predictor split (Fig. 5) read from an existing table, read-only."""

import os

from latency.breakdown import find_table, latency_breakdown
from latency.host import HostBackend
from latency.ops import DetectorShape, detector_ops
from latency.table import LatencyTable
from mnas_tf.arch import load_architecture

SHAPE = DetectorShape()


def write_table(root, specs, fingerprint=None, shape=SHAPE) -> str:
    """A table of this host (or `fingerprint`) pricing every op of `specs` at 50 us (the
    backbone at 5 ms): what `latency.lut build` leaves, without measuring."""
    fingerprint = fingerprint or {**HostBackend().fingerprint(1), "quant": "float32"}
    table = LatencyTable.for_device(fingerprint, str(root))
    keys = {str(op) for spec in specs for part in detector_ops(spec, shape).values()
            for op in part}
    table.put([(k, 5000.0 if k == str(shape.backbone_key()) else 50.0, 50.0, 0.0, 10)
               for k in sorted(keys)])
    path = table.path
    table.close()
    return path


def test_split_of_an_existing_table_leaves_it_untouched(tmp_path):
    spec = load_architecture("mnasfpn")
    path = write_table(tmp_path, [spec])
    before = sorted(os.listdir(tmp_path)), os.stat(path).st_mtime_ns
    found, why = find_table("host", 1, "float32", str(tmp_path))
    assert found == path and "this host" in why
    other = load_architecture("nasfpnlite")
    result = latency_breakdown(path, SHAPE, [spec, other])
    parts = result["splits"][0]["parts_ms"]
    assert set(parts) == {"backbone", "head", "predictor", "overhead"}
    assert parts["backbone"] == 5.0 and parts["head"] > 0 and parts["predictor"] > 0
    assert abs(sum(parts.values()) - result["splits"][0]["total_ms"]) < 1e-9
    assert "no entry" in result["splits"][1]["error"]  # not in the table: named, not raised
    assert (sorted(os.listdir(tmp_path)), os.stat(path).st_mtime_ns) == before


def test_no_table_or_an_ambiguous_phone_is_a_reason_not_an_error(tmp_path):
    assert find_table("host", 1, "float32", str(tmp_path))[0] is None
    assert find_table("host", 2, "int8", str(tmp_path))[0] is None
    phone = {"backend": "android", "threads": 4, "quant": "float32", "model": "Pixel"}
    write_table(tmp_path, [], phone)
    path, why = find_table("android", 4, "float32", str(tmp_path))
    assert path is not None and "only android table" in why
    assert find_table("android", 1, "float32", str(tmp_path))[0] is None
    write_table(tmp_path, [], {**phone, "model": "Galaxy"})
    path, why = find_table("android", 4, "float32", str(tmp_path))
    assert path is None and "2 android tables" in why
