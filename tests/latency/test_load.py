"""The load check, on simulated /proc readings (no real load needed)."""

from latency.load import LoadMonitor, count_cpus, parse_stat


class SimulatedProc:
    """/proc/loadavg and /proc/stat of a 2-core machine whose other processes use
    `others` cores; every reading advances the clock by one second (100 jiffies a core)."""

    def __init__(self, others):
        self.others = list(others)  # cores used by others, one value per interval
        self.busy = self.total = 0
        self.readings = 0

    def __call__(self):
        if self.readings:
            used = self.others[min(self.readings - 1, len(self.others) - 1)]
            self.busy += int(100 * used)
            self.total += 200
        self.readings += 1
        idle = self.total - self.busy
        stat = f"cpu {self.busy} 0 0 {idle} 0 0 0 0\ncpu0 0 0 0 0\ncpu1 0 0 0 0\n"
        return f"{1.0 + max(self.others):.2f} 0.5 0.3 2/90 123", stat


def _monitor(proc, own=lambda: 0.0, wait_s=5.0):
    clock = [0.0]

    def sleep(s):
        clock[0] += s
    messages = []
    monitor = LoadMonitor(proc, own=own, wait_s=wait_s, sleep=sleep, clock=lambda: clock[0],
                          log=messages.append)
    return monitor, messages


def test_stat_parsing():
    assert parse_stat("cpu 10 1 5 80 4 0 0 0 0 0\ncpu0 1") == (16.0, 100.0)
    assert count_cpus("cpu 1 2\ncpu0 1\ncpu1 1\nintr 5") == 2


def test_quiet_machine_measures_at_once_without_warning():
    monitor, messages = _monitor(SimulatedProc([0.05]))
    sample = monitor.settle("the table build")
    assert sample.other_cores < 0.1 and monitor.cpus == 2
    assert not messages and monitor.summary()["warnings"] == 0


def test_waits_for_a_busy_machine_to_go_quiet():
    proc = SimulatedProc([1.0, 1.0, 0.0])
    monitor, messages = _monitor(proc)
    sample = monitor.settle("the table build")
    assert sample.other_cores == 0.0 and not messages and proc.readings >= 4


def test_persistent_load_is_warned_about_and_counted():
    monitor, messages = _monitor(SimulatedProc([1.0]), wait_s=3.0)
    sample = monitor.settle("the table build")
    assert sample.other_cores == 1.0
    assert len(messages) == 1 and "under load" in messages[0] and "1.00 of 2 cores" in messages[0]
    monitor.check("round 1")
    summary = monitor.summary()
    assert summary["warnings"] == 2 and summary["other_cores_max"] == 1.0


def test_this_process_own_cpu_is_not_counted_as_load():
    """While we measure, our own CPU time (here one full core) is ours, not others'."""
    own = iter(range(0, 100)).__next__  # one CPU-second per reading
    monitor, messages = _monitor(SimulatedProc([1.0]), own=lambda: float(own()))
    monitor.start()
    assert monitor.check("round 1").other_cores == 0.0 and not messages


def test_fresh_checks_read_a_new_window_between_runs():
    """On a phone our own benchmark cannot be subtracted: a check reads a fresh window
    (quiet) instead of the interval just measured (busy with our own run)."""
    for fresh, expected in ((False, 1.0), (True, 0.0)):
        proc = SimulatedProc([2.0, 0.0])
        monitor, _ = _monitor(proc)
        monitor.fresh_checks = fresh
        monitor.start()
        proc()  # the interval of our own benchmark run: both cores busy
        assert monitor.check("round 1").other_cores == expected
