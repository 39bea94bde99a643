"""`python -m latency.benchmark`: table / JSON output and one-line errors, exit status 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from latency.benchmark import main

FIXTURES = Path(__file__).parent / "fixtures"
REQUIRED = {"median_ms", "mean_ms", "std_ms", "runs", "backend", "device"}


def run_main(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(code, err, starts):
    assert code == 2
    assert err.startswith(f"error: {starts}"), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_json_on_the_host(tiny_tflite, capsys):
    code, out, _ = run_main(capsys, tiny_tflite, "--json")
    assert code == 0
    data = json.loads(out)
    assert REQUIRED <= set(data) and data["backend"] == "host"
    assert data["runs"] == 50 and data["warmup_runs"] == 10
    assert data["device"]["threads"] == 1 and data["device"]["cpu_model"]


def test_table_on_the_host(tiny_tflite, capsys):
    code, out, _ = run_main(capsys, tiny_tflite, "--threads", "1")
    assert code == 0
    labels = [line.split()[0] for line in out.splitlines()]
    assert labels[:8] == ["model", "backend", "device", "median", "mean", "std", "p5", "p95"]
    assert "runs       50 timed after 10 warm-up" in out


def test_module_entry_point(tiny_tflite):
    proc = subprocess.run([sys.executable, "-m", "latency.benchmark", tiny_tflite, "--json"],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr
    assert REQUIRED <= set(json.loads(proc.stdout))


@pytest.mark.parametrize("argv, starts", [
    (["--runs", "20"], "--runs 20 is below the protocol minimum of 50 timed runs"),
    (["--warmup", "3"], "--warmup 3 is below the protocol minimum of 10 warm-up runs"),
    (["--threads", "0"], "--threads must be >= 1 (got 0)"),
    (["--serial", "X"], "--serial only applies to --backend android"),
    (["--op-profiling"], "--op-profiling needs --backend android"),
    (["--backend", "gpu"], "argument --backend: invalid choice: 'gpu'"),
    (["--runs", "many"], "argument --runs: invalid int value: 'many'"),
])
def test_bad_arguments(tmp_path, capsys, argv, starts):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(16))
    code, out, err = run_main(capsys, str(model), *argv)
    assert_one_error_line(code, err, starts)
    assert out == ""


def test_missing_model(tmp_path, capsys):
    code, _, err = run_main(capsys, str(tmp_path / "gone.tflite"))
    assert_one_error_line(code, err, "model file not found: ")


def test_android_json_through_fake_adb(fake_adb, fake_tflite, capsys):
    code, out, _ = run_main(capsys, fake_tflite, "--backend", "android", "--json",
                            "--serial", "9A281FFAZ001HP", "--op-profiling")
    assert code == 0
    data = json.loads(out)
    assert REQUIRED <= set(data) and data["backend"] == "android"
    assert data["median_ms"] == pytest.approx(1239.807) and data["median_estimated"] is False
    assert data["device"]["model"] == "Pixel 4 XL" and data["device"]["cpu_mask"] == "80"
    assert len(data["op_profile"]) == 8


def test_android_table_marks_an_estimated_median(fake_adb, fake_tflite, capsys):
    fake_adb.set(bench_output=str(FIXTURES / "old_plain.txt"))
    code, out, _ = run_main(capsys, fake_tflite, "--backend", "android")
    assert code == 0
    assert "median     121.318 ms  (estimated = mean" in out
    assert "Google Pixel 4 XL, Android 13, cores [7] (taskset 80), governor schedutil" in out


@pytest.mark.parametrize("scenario, starts", [
    ({"devices": []}, "no Android device found"),
    ({"devices": [["R58", "unauthorized", ""]]}, "device R58 is unauthorized"),
    ({"devices": [["A1", "device", ""], ["B2", "device", ""]]}, "several devices connected"),
    ({"binary": "missing"}, "benchmark binary missing or not executable on the phone"),
    ({"push_error": "adb: error: remote No space left on device"}, "adb push of "),
])
def test_android_errors_are_one_line(fake_adb, fake_tflite, capsys, scenario, starts):
    fake_adb.set(**scenario)
    code, out, err = run_main(capsys, fake_tflite, "--backend", "android")
    assert_one_error_line(code, err, starts)
    assert out == ""


def test_adb_not_installed(fake_tflite, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNAS_TF_ADB", str(tmp_path / "missing" / "adb"))
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = run_main(capsys, fake_tflite, "--backend", "android")
    assert_one_error_line(code, err, "adb not found: MNAS_TF_ADB=")
    assert "apt-get install -y adb" in err


def test_unparseable_output_error_shows_the_tail(fake_adb, fake_tflite, capsys):
    fake_adb.set(bench_output=str(FIXTURES / "garbage.txt"))
    code, _, err = run_main(capsys, fake_tflite, "--backend", "android")
    lines = err.strip().splitlines()
    assert code == 2 and lines[0].startswith("error: cannot parse benchmark_model output")
    assert lines[-1] == "  | ERROR: Benchmarking failed." and "Traceback" not in err
