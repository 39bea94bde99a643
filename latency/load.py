"""CPU load of *other* processes, read before and during measurement.

A single-op benchmark that shares a core with another job reads slow, and a table built
that way prices every child wrong. `/proc/loadavg` says how many tasks want a CPU;
two `/proc/stat` readings give the CPU time spent in an interval, and subtracting this
process's own CPU time (`os.times`) leaves what others used. Measuring waits (bounded)
while others are busy, then measures anyway with a warning that the output names. The
reader is injectable: tests simulate load, and the Android backend reads the phone's
files over adb (where this process uses no CPU).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Callable, Optional

Reader = Callable[[], tuple[str, str]]  # () -> (/proc/loadavg text, /proc/stat text)
DEFAULT_BUSY_CORES = 0.3  # other processes' CPU use (in cores) above which we wait or warn


def read_local() -> tuple[str, str]:
    with open("/proc/loadavg", encoding="utf-8") as f:
        loadavg = f.read()
    with open("/proc/stat", encoding="utf-8") as f:
        stat = f.read()
    return loadavg, stat


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def parse_stat(stat: str) -> tuple[float, float]:
    """(busy, total) jiffies of the aggregate `cpu` line."""
    for line in stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [float(v) for v in fields[1:9]]
            idle = values[3] + values[4]  # idle + iowait
            return sum(values) - idle, sum(values)
    raise ValueError("no aggregate cpu line in /proc/stat")


def count_cpus(stat: str) -> int:
    """Online CPUs: the `cpuN` lines of /proc/stat."""
    return sum(1 for line in stat.splitlines() if line[:3] == "cpu" and line[3:4].isdigit())


@dataclasses.dataclass
class LoadSample:
    loadavg_1m: float
    other_cores: float  # CPU used by other processes over the interval, in cores

    def to_dict(self) -> dict:
        return {"loadavg_1m": round(self.loadavg_1m, 2),
                "other_cores": round(self.other_cores, 2)}


class LoadMonitor:
    """Other processes' CPU use between two readings; `settle` waits for quiet."""

    def __init__(self, reader: Reader = read_local, cpus: Optional[int] = None,
                 busy_cores: float = DEFAULT_BUSY_CORES, wait_s: float = 20.0,
                 own: Callable[[], float] = own_cpu_seconds, sleep=time.sleep,
                 clock=time.monotonic, hz: float = 100.0, log=None,
                 fresh_checks: bool = False):
        self.reader, self.own, self.sleep, self.clock = reader, own, sleep, clock
        self.cpus = cpus
        self.busy_cores, self.wait_s, self.hz = busy_cores, wait_s, hz
        # a device whose own benchmark we cannot subtract (a phone) is checked over a
        # fresh half second between runs instead of over the interval just measured
        self.fresh_checks = fresh_checks
        self.log = log if log is not None else (lambda m: print(m, file=sys.stderr))
        self.samples: list[LoadSample] = []
        self.warnings: list[str] = []
        self._last = None

    def _read(self):
        loadavg, stat = self.reader()
        busy, total = parse_stat(stat)
        if self.cpus is None:
            self.cpus = count_cpus(stat) or os.cpu_count() or 1
        return float(loadavg.split()[0]), busy, total, self.own()

    def start(self) -> None:
        """Begins an interval (the next `sample` covers the time since)."""
        self._last = self._read()

    def sample(self) -> LoadSample:
        """Others' CPU since the last reading (since `start`); starts the next interval."""
        if self._last is None:
            self.start()
            self.sleep(0.5)
        load1, busy, total, own = now = self._read()
        _, busy0, total0, own0 = self._last
        self._last = now
        span = total - total0
        if span <= 0:
            other = 0.0
        else:
            # jiffies are per CPU: the interval's wall time is span / cpus jiffies
            used = (busy - busy0) / self.hz - (own - own0)
            other = max(0.0, used) / (span / self.cpus / self.hz)
        sample = LoadSample(load1, other)
        self.samples.append(sample)
        return sample

    def busy(self, sample: LoadSample) -> bool:
        return sample.other_cores > self.busy_cores

    def settle(self, what: str) -> LoadSample:
        """Waits up to `wait_s` for other processes to go quiet before `what`; warns (and
        says so in the output) if they do not."""
        self.start()
        self.sleep(0.5)
        sample = self.sample()
        deadline = self.clock() + self.wait_s
        while self.busy(sample) and self.clock() < deadline:
            self.sleep(1.0)
            sample = self.sample()
        if self.busy(sample):
            self.warn(f"{what} runs under load: other processes use {sample.other_cores:.2f} "
                      f"of {self.cpus} cores (loadavg {sample.loadavg_1m:.2f}); waited "
                      f"{self.wait_s:.0f} s. Entries keep the fastest of several rounds, "
                      f"but a quiet machine gives better tables")
        return sample

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.log(f"warning: {message}")

    def check(self, what: str) -> LoadSample:
        """A reading over the interval just measured (or a fresh one, see
        `fresh_checks`); warns if others were busy."""
        if self.fresh_checks:
            self.start()
            self.sleep(0.5)
        sample = self.sample()
        if self.busy(sample):
            self.warn(f"{what}: other processes used {sample.other_cores:.2f} cores "
                      f"meanwhile (loadavg {sample.loadavg_1m:.2f})")
        return sample

    def summary(self) -> dict:
        others = [s.other_cores for s in self.samples]
        return {"samples": len(others),
                "other_cores_max": round(max(others), 2) if others else None,
                "other_cores_mean": round(sum(others) / len(others), 2) if others else None,
                "loadavg_1m_max": round(max(s.loadavg_1m for s in self.samples), 2)
                if others else None,
                "warnings": len(self.warnings)}
