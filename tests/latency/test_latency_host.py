"""Host backend: LiteRT with XNNPACK on a tiny real model; validation; random inputs."""

import numpy as np
import pytest

from latency.errors import LatencyError
from latency.host import HostBackend, random_inputs
from latency.measure import LatencyResult, get_backend


def test_measure_tiny_model(tiny_tflite):
    result = get_backend("host").measure(tiny_tflite, threads=1, warmup=2, runs=10)
    assert isinstance(result, LatencyResult)
    assert result.backend == "host" and result.runs == 10 and result.warmup_runs == 2
    assert 0 < result.min_ms <= result.p5_ms <= result.median_ms <= result.p95_ms \
        <= result.max_ms
    assert result.min_ms <= result.mean_ms <= result.max_ms and result.std_ms >= 0
    assert len(result.samples_ms) == 10 and not result.median_estimated
    assert result.std_ms == pytest.approx(np.std(result.samples_ms))  # population std
    d = result.device
    assert d["threads"] == 1 and d["delegate"] == "xnnpack"
    assert d["runtime"].startswith("ai-edge-litert")
    assert d["xnnpack_applied"] is True and d["delegate_partitions"] >= 1
    assert result.init_ms > 0 and result.first_inference_ms > 0
    assert set(result.to_dict()) >= {"median_ms", "mean_ms", "std_ms", "runs", "backend",
                                     "device", "p5_ms", "p95_ms", "min_ms", "max_ms"}


def test_threads_are_recorded(tiny_tflite):
    assert HostBackend().measure(tiny_tflite, threads=2, warmup=1, runs=3).device[
        "threads"] == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"warmup": 0}, r"^warmup must be an integer >= 1 \(got 0\)"),
    ({"runs": 0}, r"^runs must be an integer >= 1 \(got 0\)"),
    ({"threads": 0}, r"^threads must be an integer >= 1 \(got 0\)"),
])
def test_bad_counts(tiny_tflite, kwargs, message):
    with pytest.raises(LatencyError, match=message):
        HostBackend().measure(tiny_tflite, **kwargs)


def test_missing_and_non_tflite_files(tmp_path):
    with pytest.raises(LatencyError, match=r"^model file not found: .*nope.tflite; pass"):
        HostBackend().measure(str(tmp_path / "nope.tflite"))
    bogus = tmp_path / "model.tflite"
    bogus.write_text("definitely not a flatbuffer")
    with pytest.raises(LatencyError, match=r"is not a TFLite model \(no 'TFL3' identifier"):
        HostBackend().measure(str(bogus))


def test_fingerprint_identifies_the_host():
    fp = HostBackend().fingerprint(threads=1)
    assert fp["backend"] == "host" and fp["threads"] == 1 and fp["delegate"] == "xnnpack"
    assert fp["cpu_model"] and fp["cpu_count"] >= 1 and fp["runtime"]


def test_unknown_backend():
    with pytest.raises(LatencyError, match=r"^unknown latency backend 'gpu'; choose one of: "
                                           r"android, host$"):
        get_backend("gpu")


def test_random_inputs_respect_dtype_ranges():
    details = [{"name": n, "dtype": t, "shape": np.array(s)} for n, t, s in [
        ("f", np.float32, [1, 8, 8, 3]), ("q", np.int8, [1, 64]), ("u", np.uint8, [64]),
        ("i", np.int32, [32]), ("b", np.bool_, [4])]]
    f, q, u, i, b = random_inputs(details)
    assert f.dtype == np.float32 and f.shape == (1, 8, 8, 3) and np.abs(f).max() <= 1
    assert q.dtype == np.int8 and u.dtype == np.uint8 and q.min() < 0 < q.max()
    assert i.dtype == np.int32 and 0 <= i.min() and i.max() <= 255
    assert b.dtype == np.bool_
    with pytest.raises(LatencyError, match=r"input 's' has dtype"):
        random_inputs([{"name": "s", "dtype": np.str_, "shape": np.array([1])}])
