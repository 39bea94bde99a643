"""Android backend: TFLite's `benchmark_model` on a phone over adb (the paper's protocol).

MnasFPN timed models with TFLite's benchmarker on a Pixel, single thread, batch 1, before
NMS. We reproduce that: push the model and a user-supplied benchmark_model binary to
/data/local/tmp, pin the run to the big cores with `taskset` (mask from cpufreq max
frequencies), run with --num_threads, parse the summary, and record what identifies the
measurement (phone model, Android version, governor, binary hash) for the LUT key.
With op profiling, end-to-end figures come from a separate run without the profiler,
which adds overhead (reference/latency.md 1.3).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from typing import Any, Optional

from latency.adb import Adb, last_line
from latency.errors import AdbError, AdbTimeout, BenchmarkParseError, LatencyError
from latency.measure import (PROTOCOL_RUNS, PROTOCOL_WARMUP, LatencyBackend, LatencyResult,
                             check_counts, check_model)
from latency.parse import BenchmarkOutput, output_tail, parse_benchmark_output
from latency.phone import (abi_runs, big_core_mask, elf_arch, parse_cpufreq, parse_getprop,
                           valid_mask)

REMOTE_DIR = "/data/local/tmp"
DEFAULT_REMOTE_BINARY = f"{REMOTE_DIR}/benchmark_model"
PID_MARK = "__MNAS_PID="
PID_FILE = f"{REMOTE_DIR}/mnas_tf_benchmark.pid"
BIN_MARK = "__MNAS_BIN="
_CPUFREQ_CMD = ("for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; "
                "do echo \"$f $(cat $f 2>/dev/null)\"; done")


class AndroidBackend(LatencyBackend):
    """benchmark_model over adb on one phone (chosen by `serial` when several)."""

    name = "android"

    def __init__(self, serial: Optional[str] = None, benchmark_binary: Optional[str] = None,
                 remote_binary: Optional[str] = None, op_profiling: bool = False,
                 cpu_mask: Optional[str] = None, timeout_s: float = 600.0,
                 adb: Optional[Adb] = None):
        if cpu_mask is not None and not valid_mask(cpu_mask):
            raise LatencyError(f"--cpu-mask must be a non-zero hex CPU mask such as f0 "
                               f"(got {cpu_mask!r})")
        if benchmark_binary is not None and not os.path.isfile(benchmark_binary):
            raise LatencyError(f"benchmark binary not found on this machine: "
                               f"{benchmark_binary}; pass the path of TFLite's prebuilt "
                               f"android_aarch64_benchmark_model")
        self.serial = serial
        self.benchmark_binary = benchmark_binary
        self.remote_binary = remote_binary or DEFAULT_REMOTE_BINARY
        self.op_profiling = op_profiling
        self.cpu_mask = cpu_mask[2:] if cpu_mask and cpu_mask.lower().startswith("0x") \
            else cpu_mask
        self.timeout_s = timeout_s
        self._adb = adb
        self._selected = False
        self._props: Optional[dict[str, str]] = None
        self._freqs: Optional[dict[int, int]] = None
        self._binary_ready = False

    # -- device facts -----------------------------------------------------------------
    @property
    def adb(self) -> Adb:
        """adb bound to the selected phone (selected on first use)."""
        if self._adb is None:
            self._adb = Adb()
        if not self._selected:
            self._adb.select(self.serial)
            self._selected = True
        return self._adb

    def _shell_ok(self, command: str, what: str, timeout: float = 60.0) -> str:
        """Output of a remote command that must succeed."""
        rc, out = self.adb.shell(command, timeout)
        if rc != 0:
            raise AdbError(f"{what} failed on device {self.adb.serial} (exit status {rc}: "
                           f"{last_line(out)}); check that the phone is unlocked and re-run")
        return out

    def props(self) -> dict[str, str]:
        """System properties (phone model, Android version, SoC, ABI), read once."""
        if self._props is None:
            self._props = parse_getprop(self._shell_ok("getprop", "getprop"))
        return self._props

    def max_freqs(self) -> dict[int, int]:
        """{cpu: max kHz}, read once; {} where cpufreq is hidden (some emulators)."""
        if self._freqs is None:
            _, out = self.adb.shell(_CPUFREQ_CMD, 30.0)
            self._freqs = parse_cpufreq(out)
        return self._freqs

    def core_mask(self, threads: int) -> tuple[str, list[int]]:
        """--cpu-mask if given, else the big cores from cpufreq."""
        if self.cpu_mask:
            mask = int(self.cpu_mask, 16)
            return self.cpu_mask, [c for c in range(64) if mask >> c & 1]
        freqs = self.max_freqs()
        if not freqs:
            raise AdbError(f"cannot read cpufreq max frequencies on device "
                           f"{self.adb.serial} (no /sys/devices/system/cpu/cpu*/cpufreq); "
                           f"pass --cpu-mask HEX (e.g. f0) to pin the run yourself")
        return big_core_mask(freqs, threads)

    def governor(self, core: int) -> Optional[str]:
        """cpufreq governor of `core`: recorded, not changed (that needs root)."""
        rc, out = self.adb.shell(
            f"cat /sys/devices/system/cpu/cpu{core}/cpufreq/scaling_governor", 30.0)
        return out.strip().splitlines()[-1].strip() if rc == 0 and out.strip() else None

    def fingerprint(self, threads: int = 1) -> dict[str, Any]:
        props = self.props()
        mask, cores = self.core_mask(threads)
        freqs = self.max_freqs()
        return {
            "backend": self.name,
            "serial": self.adb.serial,
            "model": props.get("ro.product.model"),
            "manufacturer": props.get("ro.product.manufacturer"),
            "android_version": props.get("ro.build.version.release"),
            "sdk": props.get("ro.build.version.sdk"),
            "soc": props.get("ro.soc.model") or props.get("ro.board.platform")
            or props.get("ro.hardware"),
            "abi": props.get("ro.product.cpu.abi"),
            "build": props.get("ro.build.fingerprint"),
            "threads": threads,
            "cpu_mask": mask,
            "big_cores": cores,
            "big_core_max_khz": freqs.get(cores[-1]) if cores and freqs else None,
            "governor": self.governor(cores[-1]) if cores else None,
            "delegate": "xnnpack",  # benchmark_model applies XNNPACK by default
            "binary": self.remote_binary,
            "binary_sha256": self._binary_hash(),
        }

    def read_load(self) -> tuple[str, str]:
        """The phone's /proc/loadavg and /proc/stat (see `latency.load`): other apps'
        CPU use while we are not benchmarking."""
        out = self._shell_ok("cat /proc/loadavg; echo __MNAS_STAT__; cat /proc/stat",
                             "reading the load")
        loadavg, _, stat = out.replace("\r", "").partition("__MNAS_STAT__")
        return loadavg.strip(), stat.strip()

    # -- binary -----------------------------------------------------------------------
    def _prepare_binary(self) -> None:
        """Pushes the local binary (if any), makes it executable, checks that it runs."""
        if self._binary_ready:
            return
        if self.benchmark_binary:
            self._check_arch(self.benchmark_binary)
            self.adb.push(self.benchmark_binary, self.remote_binary, timeout=300.0)
            self.adb.shell(f"chmod 755 {shlex.quote(self.remote_binary)}", 30.0)
        b = shlex.quote(self.remote_binary)
        _, out = self.adb.shell(
            f"if [ ! -e {b} ]; then echo {BIN_MARK}missing; elif [ ! -x {b} ]; then echo "
            f"{BIN_MARK}noexec; else {b} --help >/dev/null 2>&1; echo {BIN_MARK}ran$?; fi",
            60.0)
        status = (re.findall(rf"{BIN_MARK}(\w+)", out) or ["unknown"])[-1]
        detail = {"missing": "no such file", "noexec": "no execute permission",
                  "ran126": "the shell cannot execute it (wrong CPU architecture?)",
                  "ran127": "it cannot start (missing loader or libraries)",
                  "unknown": f"check said: {last_line(out)}"}.get(status)
        if detail is not None:
            raise AdbError(f"benchmark binary missing or not executable on the phone: "
                           f"{self.remote_binary} ({detail}); pass --benchmark-binary PATH "
                           f"to push TFLite's android_aarch64_benchmark_model")
        self._binary_ready = True

    def _check_arch(self, path: str) -> None:
        arch = elf_arch(path)
        if arch is None:
            raise LatencyError(f"{path} is not an executable (no ELF header); pass TFLite's "
                               f"android_aarch64_benchmark_model binary")
        abi = self.props().get("ro.product.cpu.abi", "")
        if not abi_runs(abi, arch):
            raise LatencyError(f"{os.path.basename(path)} is built for {arch} but the phone "
                               f"is {abi}; use the android_aarch64 build of benchmark_model")

    def _binary_hash(self) -> Optional[str]:
        rc, out = self.adb.shell(f"sha256sum {shlex.quote(self.remote_binary)}", 60.0)
        m = re.search(r"\b([0-9a-f]{64})\b", out) if rc == 0 else None
        if m:
            return m.group(1)
        if self.benchmark_binary:  # old toybox without sha256sum: hash our copy
            with open(self.benchmark_binary, "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()
        return None

    # -- measuring --------------------------------------------------------------------
    def measure(self, model_path: str, threads: int = 1, warmup: int = PROTOCOL_WARMUP,
                runs: int = PROTOCOL_RUNS) -> LatencyResult:
        check_counts(threads, warmup, runs)
        path = check_model(model_path)
        self._prepare_binary()
        remote_model = f"{REMOTE_DIR}/mnas_tf_" + re.sub(r"[^\w.\-]", "_",
                                                         os.path.basename(path))
        self.adb.push(path, remote_model, timeout=300.0)
        device = self.fingerprint(threads)
        mask = device["cpu_mask"]

        timing = self._run(remote_model, mask, threads, warmup, runs, profiling=False)
        profile = (self._run(remote_model, mask, threads, warmup, runs, profiling=True)
                   .op_profile if self.op_profiling else None)
        device.update({
            "binary_version": timing.version,
            "binary_output_format": timing.output_format,
            "xnnpack_applied": timing.xnnpack,
            "delegate_partitions": timing.delegate_partitions,
        })
        fields = timing.latency_ms()
        return LatencyResult(
            **fields, runs=timing.count or runs, warmup_runs=timing.warmup_count or warmup,
            backend=self.name, device=device, model=path,
            op_profile=profile.run_order if profile else None,
            op_type_summary=profile.by_node_type if profile else None)

    def _run(self, remote_model: str, mask: str, threads: int, warmup: int, runs: int,
             profiling: bool) -> BenchmarkOutput:
        """One benchmark_model run pinned with taskset; parsed output."""
        args = [f"--graph={remote_model}", f"--num_threads={threads}",
                f"--warmup_runs={warmup}", f"--num_runs={runs}"]
        if profiling:
            args.append("--enable_op_profiling=true")
        # The PID file lets a retried run (after a dropped connection) stop the run it
        # replaces, if that one is still going: two benchmarks at once would skew both.
        pidfile = PID_FILE
        command = (f"old=$(cat {pidfile} 2>/dev/null); [ -n \"$old\" ] && grep -q benchmark "
                   f"/proc/$old/cmdline 2>/dev/null && kill $old; "
                   f"taskset {mask} {shlex.quote(self.remote_binary)} "
                   f"{' '.join(shlex.quote(a) for a in args)} 2>&1 & "
                   f"p=$!; echo $p > {pidfile}; echo {PID_MARK}$p; wait $p; r=$?; "
                   f"rm -f {pidfile}; (exit $r)")
        try:
            rc, out = self.adb.shell(command, self.timeout_s)
        except AdbTimeout as e:
            self._stop(e.output)
            raise AdbError(f"benchmark_model did not finish within {self.timeout_s:.0f} s on "
                           f"device {self.adb.serial} (stopped it); pass a larger --timeout "
                           f"or fewer --runs") from None
        out = "\n".join(ln for ln in out.split("\n") if not ln.strip().startswith(PID_MARK))
        if rc != 0:
            raise BenchmarkParseError(f"benchmark_model failed on device {self.adb.serial} "
                                      f"(exit status {rc}); see its last lines:",
                                      output_tail(out))
        result = parse_benchmark_output(out)
        if profiling and result.op_profile is None:
            raise BenchmarkParseError("benchmark_model printed no op-profiling tables; use a "
                                      "build that supports --enable_op_profiling. Last lines:",
                                      output_tail(out))
        return result

    def _stop(self, partial_output: str) -> None:
        """Best effort: kill the benchmark we started (by its PID), so it stops loading
        the phone after a timeout."""
        pids = re.findall(rf"{PID_MARK}(\d+)", partial_output or "")
        if not pids:
            return
        try:
            self.adb.shell(f"kill {pids[-1]}", 10.0)
        except AdbError:
            pass

