"""Thin wrapper over the `adb` executable: device choice, shell, push, retries, timeouts.

We drive the adb *binary* (Debian package `adb`, or platform-tools) through subprocess
rather than a Python adb library: one dependency fewer, the same behaviour users get in a
terminal, and a fake `adb` script can stand in for it in tests (env `MNAS_TF_ADB`).
Every call has a timeout. Commands that fail because the connection dropped are retried
after `adb wait-for-device` (bounded); every other failure is raised at once.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Optional, Sequence

from latency.errors import AdbError, AdbTimeout

ADB_ENV = "MNAS_TF_ADB"
INSTALL_HINT = ("install it with `apt-get install -y adb` (Debian/Ubuntu) or Android "
                "platform-tools, or point MNAS_TF_ADB at an adb binary")
RC_MARK = "__MNAS_RC="
# Messages adb prints when the transport (USB/TCP) went away, as opposed to a command
# that ran and failed on the phone.
CONNECTION_ERRORS = ("device offline", "device not found", "no devices/emulators found",
                     "closed", "protocol fault", "connection reset", "device still connecting")
_DAEMON_ERRORS = ("cannot connect to daemon", "failed to start daemon",
                  "could not install *smartsocket* listener")


def find_adb() -> str:
    """Path of the adb executable: $MNAS_TF_ADB if set, else `adb` on PATH."""
    override = os.environ.get(ADB_ENV)
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise AdbError(f"adb not found: {ADB_ENV}={override} is not an executable file; "
                       f"fix or unset it, or install adb with `apt-get install -y adb`")
    found = shutil.which("adb")
    if found is None:
        raise AdbError(f"adb is not installed (no `adb` on PATH); {INSTALL_HINT}")
    return found


def last_line(text: str) -> str:
    """Last non-empty line of a command's output (the useful part of adb's errors)."""
    lines = [ln.strip() for ln in text.replace("\r", "").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def is_connection_error(text: str) -> bool:
    low = text.lower()
    return any(pattern in low for pattern in CONNECTION_ERRORS)


@dataclass
class Device:
    """One line of `adb devices -l`."""

    serial: str
    state: str
    info: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        model = self.info.get("model")
        return f"{self.serial} ({self.state}{', ' + model if model else ''})"


def parse_devices(text: str) -> list[Device]:
    """Devices listed by `adb devices -l`, in order; daemon chatter is ignored."""
    devices = []
    for line in text.replace("\r", "").splitlines():
        line = line.strip()
        if not line or line.startswith(("*", "List of devices", "adb server", "adb:")):
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            continue
        serial, rest = parts
        if rest.startswith("no permissions"):
            state = "no permissions"
        else:
            state = rest.split()[0]
        info = dict(tok.split(":", 1) for tok in rest.split() if re.match(r"^\w+:\S", tok))
        devices.append(Device(serial, state, info))
    return devices


class Adb:
    """adb bound to one device (after `select`), with timeouts and connection retries."""

    def __init__(self, executable: Optional[str] = None, serial: Optional[str] = None,
                 retries: int = 2, reconnect_timeout_s: float = 30.0,
                 timeout_s: float = 60.0):
        self.executable = executable or find_adb()
        self.serial = serial
        self.retries = retries
        self.reconnect_timeout_s = reconnect_timeout_s
        self.timeout_s = timeout_s

    # -- raw calls --------------------------------------------------------------------
    def _invoke(self, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
        """One adb call; stdout/stderr as text; AdbTimeout keeps the partial output."""
        cmd = [self.executable, *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, errors="replace")
        except subprocess.TimeoutExpired as e:
            partial = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) \
                else (e.stdout or "")
            shown = " ".join(args)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise AdbTimeout(f"`adb {shown}` did not finish within "
                             f"{timeout:.0f} s; raise the timeout or check the phone",
                             output=partial) from None
        except OSError as e:
            raise AdbError(f"cannot run adb at {self.executable} ({e.strerror}); "
                           f"{INSTALL_HINT}") from e

    def _device_args(self) -> list[str]:
        if not self.serial:
            raise AdbError("no device selected; call Adb.select() first (or pass --serial)")
        return ["-s", self.serial]

    def wait_for_device(self) -> None:
        """Blocks until the device is back, at most `reconnect_timeout_s`."""
        try:
            self._invoke([*self._device_args(), "wait-for-device"], self.reconnect_timeout_s)
        except AdbTimeout:
            raise AdbError(f"device {self.serial} dropped off adb and did not come back "
                           f"within {self.reconnect_timeout_s:.0f} s; reconnect it (check "
                           f"the cable, `adb devices`) and re-run") from None

    def run(self, args: Sequence[str], timeout: Optional[float] = None,
            needs_marker: bool = False) -> subprocess.CompletedProcess:
        """`adb -s SERIAL args...`, retried when the connection drops.

        Returns the last CompletedProcess (the caller judges non-connection failures).
        With `needs_marker`, output without the exit-status marker counts as a dropped
        connection too (the shell died before the command finished).
        """
        timeout = self.timeout_s if timeout is None else timeout
        full = [*self._device_args(), *args]
        for attempt in range(self.retries + 1):
            proc = self._invoke(full, timeout)
            text = f"{proc.stdout}\n{proc.stderr}"
            if needs_marker:  # no marker: the remote shell died before the command ended
                dropped = RC_MARK not in proc.stdout
            else:
                dropped = proc.returncode != 0 and is_connection_error(text)
            if not dropped:
                return proc
            if attempt == self.retries:
                raise AdbError(f"lost the connection to device {self.serial} "
                               f"{self.retries + 1} times (last: {last_line(text)}); check "
                               f"the USB cable / keep the phone awake and re-run")
            self.wait_for_device()
        raise AssertionError("unreachable")

    # -- device choice ----------------------------------------------------------------
    def devices(self) -> list[Device]:
        """Everything `adb devices -l` lists (any state)."""
        try:
            proc = self._invoke(["devices", "-l"], self.timeout_s)
        except AdbTimeout:
            raise AdbError(f"`adb devices` did not answer within {self.timeout_s:.0f} s; "
                           f"the adb server may be stuck: run `adb kill-server` and "
                           f"retry") from None
        if proc.returncode != 0:
            text = f"{proc.stdout}\n{proc.stderr}"
            hint = ("run `adb kill-server` and retry" if any(
                d in text.lower() for d in _DAEMON_ERRORS) else "check the adb install")
            raise AdbError(f"`adb devices` failed ({last_line(text)}); {hint}")
        return parse_devices(proc.stdout)

    def select(self, serial: Optional[str] = None) -> Device:
        """Picks the phone to use (the only one, or `serial`); it must be ready."""
        devices = self.devices()
        listing = ", ".join(d.describe() for d in devices) or "none"
        if serial:
            matches = [d for d in devices if d.serial == serial]
            if not matches:
                raise AdbError(f"device {serial!r} is not connected (adb lists: {listing}); "
                               f"pass one of the listed serials to --serial")
            device = matches[0]
        elif not devices:
            raise AdbError("no Android device found (`adb devices` lists none); connect a "
                           "phone with USB debugging enabled, or use --backend host")
        elif len(devices) > 1:
            raise AdbError(f"several devices connected ({listing}); choose one with "
                           f"--serial SERIAL")
        else:
            device = devices[0]
        _check_state(device)
        self.serial = device.serial
        return device

    # -- commands ---------------------------------------------------------------------
    def shell(self, command: str, timeout: Optional[float] = None) -> tuple[int, str]:
        """Runs `command` in the phone's shell: (its exit status, stdout+stderr).

        The exit status comes from an `echo` marker, because adb only forwards it with
        shell protocol v2 (adb >= 7.0 on both ends).
        """
        proc = self.run(["shell", f"{command}; echo {RC_MARK}$?"], timeout,
                        needs_marker=True)
        return split_marker(proc.stdout + (proc.stderr or ""))

    def push(self, local: str, remote: str, timeout: Optional[float] = None) -> None:
        """Copies a host file to the phone, or raises with adb's reason."""
        proc = self.run(["push", local, remote], timeout)
        if proc.returncode != 0:
            raise AdbError(f"adb push of {os.path.basename(local)} to {remote} failed "
                           f"({last_line(proc.stdout + proc.stderr)}); check free space "
                           f"(`adb shell df /data/local/tmp`) and that the folder is "
                           f"writable")


def split_marker(output: str) -> tuple[int, str]:
    """(exit status, output without the marker line); -1 when the marker is missing."""
    rc, kept = -1, []
    for line in output.replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if stripped.startswith(RC_MARK):
            try:
                rc = int(stripped[len(RC_MARK):])
            except ValueError:
                pass
            continue
        kept.append(line)
    return rc, "\n".join(kept)


def _check_state(device: Device) -> None:
    """Raises the fix for a device that is listed but not usable."""
    s = device.serial
    if device.state == "device":
        return
    if device.state == "unauthorized":
        raise AdbError(f"device {s} is unauthorized: unlock the phone and accept the "
                       f"'Allow USB debugging?' prompt, then re-run")
    if device.state == "offline":
        raise AdbError(f"device {s} is offline; reconnect the USB cable (or run "
                       f"`adb reconnect`) and re-run")
    if device.state == "no permissions":
        raise AdbError(f"adb has no permission to open device {s}; add a udev rule for "
                       f"the phone (see `adb devices -l`) or run adb as root")
    raise AdbError(f"device {s} is in state '{device.state}', not 'device'; boot it "
                   f"normally with USB debugging enabled and re-run")

