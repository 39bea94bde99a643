"""Android backend end to end against the fake adb (no phone): protocol, records, errors."""

from pathlib import Path

import pytest

from latency.android import AndroidBackend
from latency.errors import AdbError, BenchmarkParseError, LatencyError
from latency.measure import get_backend
from latency.phone import big_core_mask, parse_cpufreq

FIXTURES = Path(__file__).parent / "fixtures"
SERIAL = "9A281FFAZ001HP"


def bench_commands(fake_adb):
    return [c for c in fake_adb.shell_commands() if "--graph=" in c]


def test_big_core_mask_quad_plus_quad_is_f0():
    freqs = {i: 1800000 for i in range(4)} | {i: 2400000 for i in range(4, 8)}
    assert big_core_mask(freqs) == ("f0", [4, 5, 6, 7])


def test_big_core_mask_tri_cluster_prime_core_then_big_cluster():
    text = "".join(f"/sys/devices/system/cpu/cpu{i}/cpufreq/cpuinfo_max_freq {f}\n"
                   for i, f in enumerate([1785600] * 4 + [2419200] * 3 + [2841600]))
    freqs = parse_cpufreq(text + "/sys/devices/system/cpu/cpu8/cpufreq/cpuinfo_max_freq \n")
    assert len(freqs) == 8  # an offline core prints no number and is skipped
    assert big_core_mask(freqs, threads=1) == ("80", [7])
    assert big_core_mask(freqs, threads=4) == ("f0", [4, 5, 6, 7])
    assert big_core_mask(freqs, threads=6)[0] == "ff"


def test_measure_follows_the_paper_protocol_and_records_the_device(fake_adb, fake_tflite):
    result = get_backend("android").measure(fake_tflite)
    assert (result.backend, result.runs, result.warmup_runs) == ("android", 50, 10)
    assert result.median_ms == pytest.approx(1239.807) and not result.median_estimated
    assert result.mean_ms == pytest.approx(1240.27) and result.std_ms == pytest.approx(2.565)
    assert result.min_ms <= result.p5_ms <= result.median_ms <= result.p95_ms <= result.max_ms
    d = result.device
    assert (d["model"], d["android_version"], d["soc"]) == ("Pixel 4 XL", "13", "SM8150")
    assert (d["cpu_mask"], d["big_cores"], d["big_core_max_khz"]) == ("80", [7], 2841600)
    assert d["governor"] == "schedutil" and d["threads"] == 1 and d["serial"] == SERIAL
    assert d["binary_sha256"] == "ab" * 32 and d["binary_output_format"] == "info"
    assert d["xnnpack_applied"] is True and d["delegate_partitions"] == 3
    (command,) = bench_commands(fake_adb)
    assert ("taskset 80 /data/local/tmp/benchmark_model "
            "--graph=/data/local/tmp/mnas_tf_mnasfpn_320.tflite "
            "--num_threads=1 --warmup_runs=10 --num_runs=50 2>&1 &") in command
    pushes = [c for c in fake_adb.calls() if "push" in c]
    assert pushes == [["-s", SERIAL, "push", fake_tflite,
                       "/data/local/tmp/mnas_tf_mnasfpn_320.tflite"]]


def test_quad_plus_quad_phone_is_pinned_with_f0(fake_adb, fake_tflite):
    fake_adb.set(cpu_max_freq=[1800000] * 4 + [2400000] * 4)
    get_backend("android").measure(fake_tflite, warmup=2, runs=5)
    (command,) = bench_commands(fake_adb)
    assert "; taskset f0 " in command and "--warmup_runs=2 --num_runs=5" in command


def test_old_binary_output_gives_estimated_median(fake_adb, fake_tflite):
    fake_adb.set(bench_output=str(FIXTURES / "old_plain.txt"))
    result = AndroidBackend().measure(fake_tflite)
    assert result.median_estimated and result.median_ms == result.mean_ms
    assert result.p5_ms is None and result.device["binary_output_format"] == "plain"


def test_op_profiling_uses_a_separate_profiled_run(fake_adb, fake_tflite):
    result = AndroidBackend(op_profiling=True).measure(fake_tflite)
    plain, profiled = bench_commands(fake_adb)
    assert "--enable_op_profiling" not in plain
    assert "--enable_op_profiling=true" in profiled
    assert result.median_ms == pytest.approx(1239.807)  # timings from the unprofiled run
    assert len(result.op_profile) == 8 and len(result.op_type_summary) == 6
    assert result.op_profile[0]["node_type"] == "Convolution (NHWC, F32) IGEMM"


def test_local_binary_is_pushed_and_made_executable(fake_adb, fake_tflite, make_binary):
    AndroidBackend(benchmark_binary=make_binary()).measure(fake_tflite)
    pushed = [c[-1] for c in fake_adb.calls() if "push" in c]
    assert pushed[0] == "/data/local/tmp/benchmark_model"
    assert "chmod 755 /data/local/tmp/benchmark_model" in fake_adb.shell_commands()


def test_remote_binary_path_is_used(fake_adb, fake_tflite):
    AndroidBackend(remote_binary="/data/local/tmp/bm_2.16").measure(fake_tflite)
    assert "; taskset 80 /data/local/tmp/bm_2.16 " in bench_commands(fake_adb)[0]
    assert not any("push" in c and c[-1].endswith("bm_2.16") for c in fake_adb.calls())


@pytest.mark.parametrize("state, detail", [("missing", "no such file"),
                                           ("noexec", "no execute permission"),
                                           ("badarch", "wrong CPU architecture")])
def test_binary_missing_or_not_executable(fake_adb, fake_tflite, state, detail):
    fake_adb.set(binary=state)
    with pytest.raises(AdbError) as info:
        AndroidBackend().measure(fake_tflite)
    message = str(info.value)
    assert message.startswith("benchmark binary missing or not executable on the phone: "
                              "/data/local/tmp/benchmark_model (")
    assert detail in message and "--benchmark-binary" in message
    assert not bench_commands(fake_adb)


def test_x86_binary_for_an_arm_phone_is_refused_before_pushing(fake_adb, fake_tflite,
                                                              make_binary):
    backend = AndroidBackend(benchmark_binary=make_binary(machine=0x3E))
    with pytest.raises(LatencyError, match=r"is built for x86_64 but the phone is arm64-v8a"):
        backend.measure(fake_tflite)
    assert not any("push" in c for c in fake_adb.calls())


def test_local_binary_must_exist(fake_adb, tmp_path):
    with pytest.raises(LatencyError, match=r"^benchmark binary not found on this machine"):
        AndroidBackend(benchmark_binary=str(tmp_path / "nope"))


def test_push_failure(fake_adb, fake_tflite):
    fake_adb.set(push_error="adb: error: failed to copy: remote Read-only file system")
    with pytest.raises(AdbError, match=r"^adb push of mnasfpn 320.tflite to .* failed "
                                       r"\(adb: error: failed to copy: remote Read-only"):
        AndroidBackend().measure(fake_tflite)


def test_run_that_times_out_is_stopped(fake_adb, fake_tflite):
    fake_adb.set(bench_sleep=30)
    with pytest.raises(AdbError) as info:
        AndroidBackend(timeout_s=1).measure(fake_tflite)
    assert str(info.value) == (f"benchmark_model did not finish within 1 s on device "
                               f"{SERIAL} (stopped it); pass a larger --timeout or fewer "
                               f"--runs")
    assert "kill 4242" in fake_adb.shell_commands()  # the PID it printed, nothing broader


def test_connection_dropped_mid_run_is_retried(fake_adb, fake_tflite):
    fake_adb.set(drop={"match": "--graph=", "times": 1, "message": "error: device offline"})
    result = AndroidBackend().measure(fake_tflite)
    assert result.median_ms == pytest.approx(1239.807)
    assert any("wait-for-device" in c for c in fake_adb.calls())


def test_unparseable_output_shows_the_tail(fake_adb, fake_tflite):
    fake_adb.set(bench_output=str(FIXTURES / "garbage.txt"))
    with pytest.raises(BenchmarkParseError) as info:
        AndroidBackend().measure(fake_tflite)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("cannot parse benchmark_model output")
    assert lines[-1] == "  | ERROR: Benchmarking failed."


def test_failing_benchmark_reports_status_and_tail(fake_adb, fake_tflite):
    fake_adb.set(bench_output=str(FIXTURES / "garbage.txt"), bench_rc=1)
    with pytest.raises(BenchmarkParseError, match=r"^benchmark_model failed on device "
                                                  r"9A281FFAZ001HP \(exit status 1\)"):
        AndroidBackend().measure(fake_tflite)


def test_unreadable_cpufreq_asks_for_a_mask(fake_adb, fake_tflite):
    fake_adb.set(cpu_max_freq=[])
    with pytest.raises(AdbError, match=r"cannot read cpufreq .* pass --cpu-mask HEX"):
        AndroidBackend().measure(fake_tflite)
    AndroidBackend(cpu_mask="0x0c").measure(fake_tflite)
    assert "; taskset 0c " in bench_commands(fake_adb)[-1]


def test_bad_cpu_mask_is_refused():
    with pytest.raises(LatencyError, match=r"--cpu-mask must be a non-zero hex CPU mask"):
        AndroidBackend(cpu_mask="big")


def test_fingerprint_needs_no_model(fake_adb):
    fp = AndroidBackend(serial=SERIAL).fingerprint(threads=1)
    assert {k: fp[k] for k in ("model", "android_version", "cpu_mask", "governor",
                               "delegate", "threads")} == {
        "model": "Pixel 4 XL", "android_version": "13", "cpu_mask": "80",
        "governor": "schedutil", "delegate": "xnnpack", "threads": 1}
    assert not bench_commands(fake_adb)
