"""Fixtures for the latency tests: a tiny real .tflite, and a fake `adb` on a scenario."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

PIXEL4_FREQS = [1785600] * 4 + [2419200] * 3 + [2841600]  # little / big / prime core
PIXEL4_PROPS = {
    "ro.product.model": "Pixel 4 XL",
    "ro.product.manufacturer": "Google",
    "ro.build.version.release": "13",
    "ro.build.version.sdk": "33",
    "ro.soc.model": "SM8150",
    "ro.board.platform": "msmnile",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.build.fingerprint": "google/coral/coral:13/TP1A.221005.002/9012097:user/release-keys",
}


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory) -> str:
    """A Conv2D+ReLU model on 16x16x3 (dynamic batch), converted once per session."""
    import tensorflow as tf
    import tf_keras
    inp = tf_keras.Input((16, 16, 3))
    out = tf_keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    model = tf_keras.Model(inp, out)
    path = tmp_path_factory.mktemp("latency_model") / "tiny.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return str(path)


@pytest.fixture
def fake_tflite(tmp_path) -> str:
    """Bytes that pass the TFLite identifier check; only ever pushed to the fake phone."""
    path = tmp_path / "mnasfpn 320.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    return str(path)


def fake_binary(tmp_path, machine: int = 0xB7, name: str = "benchmark_model") -> str:
    """A file with an ELF header for `machine` (0xB7 aarch64, 0x3E x86-64)."""
    path = tmp_path / name
    path.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + machine.to_bytes(2, "little")
                     + bytes(44))
    return str(path)


class FakeAdb:
    """The fake adb's scenario (editable) and the calls it received."""

    def __init__(self, tmp_path: Path, monkeypatch):
        self.dir = tmp_path / "fake_adb"
        self.dir.mkdir()
        self.executable = self.dir / "adb"
        shutil.copy(FIXTURES / "fake_adb.py", self.executable)
        self.executable.chmod(self.executable.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP)
        # `#!/usr/bin/env python3` must find a fast interpreter: this one.
        bindir = self.dir / "bin"
        bindir.mkdir()
        (bindir / "python3").symlink_to(sys.executable)
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
        self.log = self.dir / "calls.jsonl"
        self.scenario_path = self.dir / "scenario.json"
        self.scenario = {
            "log": str(self.log),
            "devices": [["9A281FFAZ001HP", "device",
                         "usb:1-1 product:coral model:Pixel_4_XL device:coral transport_id:1"]],
            "props": dict(PIXEL4_PROPS),
            "cpu_max_freq": list(PIXEL4_FREQS),
            "governor": "schedutil",
            "binary": "ok",
            "bench_output": str(FIXTURES / "new_info_scientific.txt"),
            "profile_output": str(FIXTURES / "new_info_op_profiling.txt"),
        }
        monkeypatch.setenv("MNAS_TF_ADB", str(self.executable))
        monkeypatch.setenv("FAKE_ADB_SCENARIO", str(self.scenario_path))
        self.save()

    def set(self, **changes) -> "FakeAdb":
        self.scenario.update(changes)
        self.save()
        return self

    def save(self) -> None:
        self.scenario_path.write_text(json.dumps(self.scenario))

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def shell_commands(self) -> list[str]:
        """Remote commands, without the exit-status marker adb.py appends."""
        marker = "; echo __MNAS_RC=$?"
        return [" ".join(c[c.index("shell") + 1:]).removesuffix(marker)
                for c in self.calls() if "shell" in c]


@pytest.fixture
def fake_adb(tmp_path, monkeypatch) -> FakeAdb:
    return FakeAdb(tmp_path, monkeypatch)


@pytest.fixture
def make_binary(tmp_path):
    """make_binary(machine=0xB7) -> path of a fake benchmark_model ELF for that CPU."""
    return lambda machine=0xB7, name="benchmark_model": fake_binary(tmp_path, machine, name)
