"""Errors of the latency toolkit: each says what went wrong and how to fix it, in one line.

Callers (the CLI, search loops) print `str(error)` as is, so the message is the whole user
interface: no tracebacks, no "see logs".
"""

from __future__ import annotations


class LatencyError(RuntimeError):
    """A measurement that cannot go ahead; the first line names the problem and the fix."""


class AdbError(LatencyError):
    """adb is missing, no usable phone, or a command on the phone failed."""


class AdbTimeout(AdbError):
    """An adb command ran past its time limit (the local adb client was killed)."""

    def __init__(self, message: str, output: str = ""):
        self.output = output  # what the command printed before it was killed
        super().__init__(message)


class BenchmarkParseError(LatencyError):
    """benchmark_model printed something this parser cannot read; carries the output tail."""

    def __init__(self, message: str, tail: str = ""):
        self.tail = tail
        super().__init__(f"{message}\n{tail}" if tail else message)
