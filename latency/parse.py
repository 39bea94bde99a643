"""Parser for the text TFLite's `benchmark_model` prints (reference/latency.md section 1.2-1.3).

Accepts every format seen in the wild: bare lines (old builds), `INFO: ` prefixes (newer
builds), Android logcat prefixes, `\\r\\n` line ends, 6-significant-digit numbers in
scientific notation (`1.24027e+06`), the legacy `Average inference timings in us: ...`
summary, the `count=... std=...` stat lines with or without `p5= median= p95=`, and the
op-profiling tables, as text or as the CSV of `--profiling_output_csv_file`. All times in
the output are microseconds; the parser keeps them in microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from latency.errors import BenchmarkParseError

NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
TAIL_LINES = 15

_PREFIX = re.compile(
    r"^(?:\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+)?"        # logcat threadtime
    r"(?:(?:INFO|WARNING|WARN|ERROR|VERBOSE|DEBUG):\s?"             # newer benchmark_model
    r"|[VDIWEF]\s+tflite\s*:\s?"                                    # logcat: I tflite  :
    r"|[VDIWEF]/tflite\s*\(\s*\d+\):\s?)")                          # logcat brief
_PAIR = re.compile(rf"(\w+)=({NUM})(\(all same\))?")
_PARAM = re.compile(r"^([A-Za-z#][^\[\]=]*?)\s*:\s*\[(.*)\]\s*$")
_RUN_HEADER = re.compile(r"Running benchmark for (?:at least )?(\d+) iterations")
_SUMMARY = re.compile(r"^(Average )?[Ii]nference timings in us:\s*(.*)$")
_LABELLED = re.compile(rf"([A-Za-z][A-Za-z ()]*?)\s*:\s*({NUM})")
_DELEGATE = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \((\w+)\) node,"
                       r" yielding (\d+) partitions")
_MEMORY = re.compile(rf"(?:Memory footprint delta from the start of the tool|"
                     rf"Peak memory footprint) \(MB\): init=({NUM}) overall=({NUM})")
_VERSION = re.compile(r"(?i)\b(?:TensorFlow Lite|TFLite|LiteRT)\b[^\n]*?\bversion\b\s*"
                      r"[:=]?\s*\[?\s*(\d+\.\d+[\w.\-]*)")
_RUN_SECTION = "Operator-wise Profiling Info for Regular Benchmark Runs"
_INIT_SECTION = "Profiling Info for Benchmark Initialization"

_COLUMNS = {  # op-profiling column titles (text and CSV) -> row keys
    "node type": "node_type", "start": "start_ms", "first": "first_ms", "avg ms": "avg_ms",
    "avg_ms": "avg_ms", "%": "percent", "avg %": "percent", "cdf%": "cdf_percent",
    "cdf %": "cdf_percent", "mem kb": "mem_kb", "times called": "times_called",
    "name": "name", "count": "count",
}
_TABLE_TITLES = {"run order": "run_order", "top by computation time": "top_by_time",
                 "top by memory use": "top_by_memory", "summary by node type": "by_node_type"}


@dataclass
class OpProfile:
    """Per-op tables of the regular runs (times in ms, as benchmark_model prints them)."""

    run_order: list[dict[str, Any]] = field(default_factory=list)
    top_by_time: list[dict[str, Any]] = field(default_factory=list)
    by_node_type: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class BenchmarkOutput:
    """Everything read from one benchmark_model run; times in microseconds."""

    count: Optional[int] = None
    avg_us: Optional[float] = None
    std_us: Optional[float] = None
    min_us: Optional[float] = None
    max_us: Optional[float] = None
    first_us: Optional[float] = None
    p5_us: Optional[float] = None
    median_us: Optional[float] = None
    p95_us: Optional[float] = None
    init_us: Optional[float] = None
    first_inference_us: Optional[float] = None
    warmup_avg_us: Optional[float] = None
    inference_avg_us: Optional[float] = None
    warmup_count: Optional[int] = None
    output_format: str = "plain"  # plain | info | logcat | legacy
    params: dict[str, str] = field(default_factory=dict)
    xnnpack: Optional[bool] = None
    delegate: Optional[str] = None
    delegated_nodes: Optional[int] = None
    total_nodes: Optional[int] = None
    delegate_partitions: Optional[int] = None
    memory_init_mb: Optional[float] = None
    memory_overall_mb: Optional[float] = None
    version: Optional[str] = None
    op_profile: Optional[OpProfile] = None

    def latency_ms(self) -> dict[str, Any]:
        """LatencyResult figures in ms; median falls back to the mean (flagged) if absent."""
        def ms(v: Optional[float]) -> Optional[float]:
            return None if v is None else v / 1000.0
        mean = self.avg_us if self.avg_us is not None else self.inference_avg_us
        estimated = self.median_us is None
        return {
            "median_ms": ms(mean if estimated else self.median_us),
            "mean_ms": ms(mean), "std_ms": ms(self.std_us),
            "p5_ms": ms(self.p5_us), "p95_ms": ms(self.p95_us),
            "min_ms": ms(self.min_us), "max_ms": ms(self.max_us),
            "median_estimated": estimated,
            "init_ms": ms(self.init_us), "first_inference_ms": ms(self.first_inference_us),
        }


def output_tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last non-empty `lines` lines, indented, for error messages."""
    kept = [ln.rstrip() for ln in text.replace("\r", "").splitlines() if ln.strip()]
    if not kept:
        return "  | (no output at all)"
    return "\n".join(f"  | {ln}" for ln in kept[-lines:])


def strip_prefix(line: str) -> str:
    """A log line without `INFO: ` / logcat prefixes and trailing `\\r`."""
    return _PREFIX.sub("", line.rstrip("\r\n")).rstrip("\r")


def _stat_line(text: str) -> Optional[dict[str, float]]:
    """key=value pairs of a `count=...` stat line; `curr=C(all same)` expanded."""
    pairs = {}
    for key, value, same in _PAIR.findall(text):
        pairs[key] = float(value)
        if same:
            pairs["all_same"] = 1.0
    if "count" not in pairs:
        return None
    if "all_same" in pairs or (pairs["count"] == 1 and "curr" in pairs and "avg" not in pairs):
        c = pairs["curr"]
        for key in ("first", "min", "max", "avg", "p5", "median", "p95"):
            pairs.setdefault(key, c)
        pairs.setdefault("std", 0.0)
    return pairs


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= max(1e-4 * max(abs(a), abs(b)), 0.01)


def parse_benchmark_output(text: str) -> BenchmarkOutput:
    """Timings (+ op profile if present) from benchmark_model's stdout/stderr text."""
    out = BenchmarkOutput()
    stats: list[tuple[int, dict[str, float]]] = []  # (phase header index, stat line)
    phase = -1
    prefix_style = "plain"
    lines = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = strip_prefix(raw)
        if line != raw and prefix_style == "plain":
            prefix_style = "info" if re.match(r"^[A-Z]+:", raw) else "logcat"
        lines.append(line.strip())
    out.output_format = prefix_style
    in_profile = False

    for line in lines:
        if "Profiling Info for" in line:
            in_profile = True  # op tables: no stat, summary or parameter lines in there
        if in_profile:
            continue
        if _RUN_HEADER.search(line):
            phase += 1
        elif line.startswith(("count=", "curr=")):
            if (s := _stat_line(line)) is not None:
                stats.append((phase, s))
        elif (m := _SUMMARY.match(line)):
            values = {k.strip().lower(): float(v) for k, v in _LABELLED.findall(m.group(2))}
            if m.group(1):
                out.output_format = "legacy"
                out.inference_avg_us = values.get("inference", values.get("no stats"))
                out.warmup_avg_us = values.get("warmup")
            else:
                out.inference_avg_us = values.get("inference (avg)")
                out.warmup_avg_us = values.get("warmup (avg)")
                out.first_inference_us = values.get("first inference")
            out.init_us = values.get("init")
        elif (m := _DELEGATE.search(line)):
            out.delegated_nodes, out.total_nodes = int(m.group(1)), int(m.group(2))
            out.delegate, out.delegate_partitions = m.group(3), int(m.group(4))
            if "XNNPack" in m.group(3) or "XNNPACK" in m.group(3):
                out.xnnpack = True
        elif "XNNPACK delegate" in line and ("Created" in line or "created" in line):
            out.xnnpack = True
        elif (m := _MEMORY.search(line)):
            out.memory_init_mb, out.memory_overall_mb = float(m.group(1)), float(m.group(2))
        elif (m := _PARAM.match(line)):
            out.params.setdefault(m.group(1).strip(), m.group(2).strip())
        if out.version is None and (m := _VERSION.search(line)):
            out.version = m.group(1)

    if out.xnnpack is None and out.params.get("Use xnnpack", "").lower() in ("0", "false"):
        out.xnnpack = False  # explicitly disabled, and no delegate line says otherwise
    _pick_regular_stats(out, stats)
    if out.count == 0:
        raise BenchmarkParseError("benchmark_model made no timed runs (count=0); raise "
                                  "--runs or check the model runs at all. Last lines:",
                                  output_tail(text))
    if out.avg_us is None and out.inference_avg_us is None:
        raise BenchmarkParseError(
            "cannot parse benchmark_model output: no 'Inference timings in us' summary and "
            "no 'count=... avg=...' line; check that the binary is TFLite's benchmark_model "
            "and that it finished. Last lines:", output_tail(text))
    if any(_RUN_SECTION in ln for ln in lines):
        out.op_profile = parse_op_profile("\n".join(lines))
    return out


def _pick_regular_stats(out: BenchmarkOutput, stats: list[tuple[int, dict[str, float]]]
                        ) -> None:
    """Chooses the regular-run stat line: its avg matches the summary, else the last one.

    The warm-up phase prints a stat line too; op-profiling prints `Timings (microseconds):
    count=...`, which never starts a line and so is not a candidate.
    """
    if not stats:
        return
    chosen = stats[-1]
    if out.inference_avg_us is not None:
        matching = [s for s in stats if "avg" in s[1] and _close(s[1]["avg"],
                                                                 out.inference_avg_us)]
        if matching:
            chosen = matching[-1]
    earlier = [s for s in stats if s is not chosen and s[0] < chosen[0]]
    if earlier:
        out.warmup_count = int(earlier[-1][1]["count"])
    s = chosen[1]
    out.count = int(s["count"])
    out.avg_us, out.std_us = s.get("avg"), s.get("std")
    out.min_us, out.max_us, out.first_us = s.get("min"), s.get("max"), s.get("first")
    out.p5_us, out.median_us, out.p95_us = s.get("p5"), s.get("median"), s.get("p95")


def _number(text: str) -> float:
    return float(text.strip().rstrip("%"))


def _row(columns: list[str], fields: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for col, value in zip(columns, fields, strict=True):
        key = _COLUMNS.get(col.strip().lower(), col.strip().lower().replace(" ", "_"))
        row[key] = value.strip() if key in ("node_type", "name") else _number(value)
    for key in ("times_called", "count"):
        if key in row:
            row[key] = int(row[key])
    return row


def _split_text_row(line: str, n_columns: int, has_name: bool) -> Optional[list[str]]:
    """Fields of a text-table row; node types may contain single spaces and commas."""
    fields = [f for f in re.split(r"\t+|\s{2,}", line.strip()) if f != ""]
    if len(fields) == n_columns:
        return fields
    n_num = n_columns - 1 - (1 if has_name else 0)
    m = re.match(rf"^(.+?)\s+((?:{NUM}%?\s+){{{n_num - 1}}}{NUM}%?)"
                 + (r"\s+(.*)$" if has_name else r"\s*$"), line.strip())
    if not m:
        return None
    return [m.group(1), *m.group(2).split()] + ([m.group(3)] if has_name else [])


def _split_csv_row(line: str, n_columns: int, has_name: bool) -> Optional[list[str]]:
    """Fields of a CSV row: the node type may hold ', ' (XNNPACK), so count from the right."""
    parts = line.split(", ")
    n_tail = n_columns - 1
    if len(parts) < n_columns:
        return None
    fields = [", ".join(parts[: len(parts) - n_tail]), *parts[len(parts) - n_tail:]]
    if has_name:  # CSV mode replaced the commas in names by tabs
        fields[-1] = fields[-1].replace("\t", ",")
    return fields


def parse_op_profile(text: str) -> OpProfile:
    """The regular-run op tables (text or CSV). Initialization tables are skipped."""
    lines = [strip_prefix(ln).strip() for ln in text.replace("\r", "").split("\n")]
    start = next((i for i, ln in enumerate(lines) if _RUN_SECTION in ln), None)
    if start is None:
        raise BenchmarkParseError(f"no '{_RUN_SECTION}' section in the op profile; run "
                                  f"benchmark_model with --enable_op_profiling=true. "
                                  f"Last lines:", output_tail(text))
    profile = OpProfile()
    pending_title: Optional[str] = None  # from a '==== Title ====' line, if the build prints it
    table: Optional[list] = None
    columns: list[str] = []
    csv = False
    untitled_seen = 0
    for line in lines[start + 1:]:
        if _INIT_SECTION in line or _RUN_SECTION in line:
            break  # another section (CSV files and repeated runs hold several)
        if not line or line.startswith(("Timings (microseconds)", "Memory (bytes)")):
            table = None
            continue
        if line.startswith("=====") and line.endswith("====="):
            pending_title = _TABLE_TITLES.get(line.strip("= ").lower(), "other")
            table = None
            continue
        if line.lower().startswith(("[node type]", "node type,")):
            csv = not line.startswith("[")
            columns = ([c.strip() for c in line.split(",")] if csv
                       else re.findall(r"\[([^\]]+)\]", line))
            title = pending_title
            if title is None:  # builds without table titles: infer from the order
                if "count" in [c.lower() for c in columns]:
                    title = "by_node_type"
                else:
                    title = "run_order" if untitled_seen == 0 else "top_by_time"
                    untitled_seen += 1
            pending_title = None
            table = getattr(profile, title, None) if title != "other" else None
            continue
        if table is None:
            continue
        has_name = columns[-1].lower() == "name"
        fields = (_split_csv_row if csv else _split_text_row)(line, len(columns), has_name)
        if fields is None:
            continue
        try:
            table.append(_row(columns, fields))
        except ValueError:
            continue
    return profile
