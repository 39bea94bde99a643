"""benchmark_model output parsing on canned outputs (fixtures/) in every known format."""

from pathlib import Path

import pytest

from latency.errors import BenchmarkParseError
from latency.parse import parse_benchmark_output, parse_op_profile

FIXTURES = Path(__file__).parent / "fixtures"


def parsed(name):
    return parse_benchmark_output((FIXTURES / name).read_text())


def test_old_plain_format_has_no_median_so_it_is_estimated():
    out = parsed("old_plain.txt")
    assert out.output_format == "plain"
    assert (out.count, out.warmup_count) == (50, 10)  # the regular line, not the warm-up one
    ms = out.latency_ms()
    assert ms["mean_ms"] == pytest.approx(121.318)
    assert ms["median_ms"] == ms["mean_ms"] and ms["median_estimated"] is True
    assert ms["std_ms"] == pytest.approx(1.021)
    assert (ms["min_ms"], ms["max_ms"]) == (pytest.approx(119.857), pytest.approx(124.950))
    assert ms["p5_ms"] is None and ms["p95_ms"] is None
    assert ms["init_ms"] == pytest.approx(41.882)
    assert ms["first_inference_ms"] == pytest.approx(141.272)
    assert out.memory_overall_mb == pytest.approx(24.5352)
    assert out.params["Min num runs"] == "50" and out.params["Num threads"] == "1"


def test_new_info_format_with_scientific_notation_and_percentiles():
    out = parsed("new_info_scientific.txt")
    assert out.output_format == "info"
    assert out.count == 50 and out.warmup_count == 10
    ms = out.latency_ms()
    assert ms["median_estimated"] is False
    assert ms["median_ms"] == pytest.approx(1239.807)
    assert ms["mean_ms"] == pytest.approx(1240.27)  # avg=1.24027e+06 us
    assert ms["std_ms"] == pytest.approx(2.565)
    assert (ms["p5_ms"], ms["p95_ms"]) == (pytest.approx(1238.753), pytest.approx(1247.415))
    assert out.warmup_avg_us == pytest.approx(1.25273e6)
    assert out.xnnpack is True and out.delegate == "TfLiteXNNPackDelegate"
    assert (out.delegated_nodes, out.total_nodes, out.delegate_partitions) == (412, 418, 3)
    assert out.op_profile is None


def test_legacy_average_format_with_curr_before_count():
    out = parsed("legacy_average.txt")
    assert out.output_format == "legacy"
    assert out.count == 50 and out.warmup_count == 1
    ms = out.latency_ms()
    assert ms["mean_ms"] == pytest.approx(80.6601) and ms["median_estimated"] is True
    assert ms["std_ms"] == pytest.approx(0.712)
    assert out.warmup_avg_us == 91471 and out.init_us == 4108


def test_legacy_summary_only_gives_mean_and_nothing_invented():
    out = parsed("legacy_nostats.txt")
    ms = out.latency_ms()
    assert out.count is None
    assert ms["mean_ms"] == ms["median_ms"] == pytest.approx(80.6601)
    assert ms["median_estimated"] is True
    assert ms["std_ms"] is None and ms["min_ms"] is None


def test_new_format_with_op_profiling_tables():
    out = parsed("new_info_op_profiling.txt")
    assert out.count == 162  # not the 'Timings (microseconds): count=...' of the tables
    assert out.latency_ms()["median_ms"] == pytest.approx(6.169)
    prof = out.op_profile
    assert len(prof.run_order) == 8 and len(prof.top_by_time) == 5
    first = prof.run_order[0]
    assert first == {"node_type": "Convolution (NHWC, F32) IGEMM", "first_ms": 1.912,
                     "avg_ms": 1.874, "percent": 30.651, "cdf_percent": 30.651,
                     "mem_kb": 0.0, "times_called": 1,
                     "name": "Delegate/Convolution (NHWC, F32) IGEMM:0"}
    assert prof.run_order[-1]["name"] == "[raw_boxes/concat, raw_scores/concat]:57"
    assert sum(r["percent"] for r in prof.run_order) == pytest.approx(100, abs=0.01)
    # initialization tables (ModifyGraphWithDelegate, AllocateTensors) are not op rows
    assert not any(r["node_type"] == "AllocateTensors" for r in prof.run_order)
    assert sum(r["count"] for r in prof.by_node_type) == 8
    assert prof.by_node_type[0]["node_type"] == "Convolution (NHWC, F32) GEMM"


def test_old_tab_separated_op_profiling_with_start_column():
    out = parsed("old_op_profiling.txt")
    assert out.xnnpack is False  # 'Use xnnpack : [0]' and no delegate line
    prof = out.op_profile
    assert [r["node_type"] for r in prof.run_order][:3] == ["CONV_2D", "DEPTHWISE_CONV_2D",
                                                            "CONV_2D"]
    assert prof.run_order[1]["start_ms"] == pytest.approx(1.876)
    assert prof.run_order[1]["name"] == "[mnasfpn/cell_0/block_0/depthwise/Relu6]"
    assert {r["node_type"]: r["count"] for r in prof.by_node_type}["CONV_2D"] == 3


def test_csv_profile_matches_the_text_tables():
    csv = parse_op_profile((FIXTURES / "profile.csv").read_text())
    text = parsed("new_info_op_profiling.txt").op_profile
    assert [(r["node_type"], r["avg_ms"], r["name"]) for r in csv.run_order] == \
        [(r["node_type"], r["avg_ms"], r["name"]) for r in text.run_order]
    assert csv.run_order[3]["percent"] == pytest.approx(3.3366)
    assert len(csv.top_by_time) == 5 and len(csv.by_node_type) == 6
    assert csv.by_node_type[0] == {"node_type": "Convolution (NHWC, F32) GEMM", "count": 2,
                                   "avg_ms": 2.292, "percent": 37.4877,
                                   "cdf_percent": 37.4877, "mem_kb": 0.0, "times_called": 2}


def test_tables_without_titles_are_told_apart_by_order():
    text = "\n".join([
        "Inference timings in us: Init: 2450, First inference: 129, Warmup (avg): 39.1513, "
        "Inference (avg): 58.311",
        "Operator-wise Profiling Info for Regular Benchmark Runs:",
        "\t [node type]\t [start]\t [first]\t [avg ms]\t [%]\t [cdf%]\t [mem KB]\t"
        "[times called]\t[Name]",
        "\t FULLY_CONNECTED\t 0.000\t 0.030\t 0.016\t 34.118%\t 34.118%\t 0.000\t 1\t[d1]:ld",
        "\t TANH\t 0.017\t 0.007\t 0.004\t 9.175%\t 43.293%\t 0.000\t 1\t[d1/Tanh]:ld",
        "",
        "\t [node type]\t [start]\t [first]\t [avg ms]\t [%]\t [cdf%]\t [mem KB]\t"
        "[times called]\t[Name]",
        "\t FULLY_CONNECTED\t 0.000\t 0.030\t 0.016\t 34.118%\t 34.118%\t 0.000\t 1\t[d1]:ld",
        "",
        "Number of nodes executed: 2",
        "\t [Node type]\t [count]\t [avg ms]\t [avg %]\t [cdf %]\t [mem KB]\t[times called]",
        "\t FULLY_CONNECTED\t 1\t 0.016\t 80.000%\t 80.000%\t 0.000\t 1",
        "\t TANH\t 1\t 0.004\t 20.000%\t 100.000%\t 0.000\t 1",
    ])
    prof = parse_benchmark_output(text).op_profile
    assert [r["node_type"] for r in prof.run_order] == ["FULLY_CONNECTED", "TANH"]
    assert len(prof.top_by_time) == 1 and len(prof.by_node_type) == 2


def test_logcat_prefixes_crlf_and_all_same_runs():
    text = ("07-14 13:23:08.133 25289 25289 I tflite  : Min num runs: [3]\r\n"
            "07-14 13:23:08.859 25289 25289 I tflite  : count=3 curr=2500(all same)\r\n"
            "07-14 13:23:08.860 25289 25289 I tflite  : Inference timings in us: Init: 9, "
            "First inference: 2600, Warmup (avg): 2600, Inference (avg): 2500\r\n")
    out = parse_benchmark_output(text)
    assert out.output_format == "logcat" and out.params["Min num runs"] == "3"
    ms = out.latency_ms()
    assert out.count == 3 and ms["std_ms"] == 0 and ms["min_ms"] == ms["max_ms"] == 2.5
    assert ms["median_ms"] == 2.5 and ms["median_estimated"] is False


def test_garbage_output_raises_with_the_last_15_lines():
    noise = "\n".join(f"noise line {i}" for i in range(40))
    text = noise + "\n" + (FIXTURES / "garbage.txt").read_text()
    with pytest.raises(BenchmarkParseError) as info:
        parse_benchmark_output(text)
    message = str(info.value)
    assert message.splitlines()[0].startswith("cannot parse benchmark_model output")
    assert "ERROR: Benchmarking failed." in message and "STABLEHLO_COMPOSITE" in message
    assert "noise line 39" in message and "noise line 30" not in message
    assert len(info.value.tail.splitlines()) == 15


def test_zero_timed_runs_is_an_error():
    with pytest.raises(BenchmarkParseError, match="no timed runs"):
        parse_benchmark_output("count=0\nInference timings in us: Init: 1, First "
                               "inference: 2, Warmup (avg): 2, Inference (avg): 0\n")


def test_op_profile_without_the_section_is_an_error():
    with pytest.raises(BenchmarkParseError, match="--enable_op_profiling=true"):
        parse_op_profile("node type, first, avg_ms\n")
