"""The adb wrapper: finding adb, choosing the device, retries, against a fake and real adb."""

import os
import shutil
import socket
import subprocess

import pytest

from latency.adb import Adb, find_adb, parse_devices, split_marker
from latency.errors import AdbError


def test_parse_devices_skips_daemon_chatter_and_reads_states():
    text = ("* daemon not running; starting now at tcp:5037\n* daemon started successfully\n"
            "List of devices attached\n"
            "9A281FFAZ001HP         device usb:1-1 product:coral model:Pixel_4_XL "
            "device:coral transport_id:1\n"
            "emulator-5554          offline transport_id:2\n"
            "R58M42ABCDE            unauthorized usb:1-2 transport_id:3\n"
            "0123456789ABCDEF       no permissions (user in plugdev group; are your udev "
            "rules wrong?); see [http://developer.android.com/tools/device.html]\n\n")
    devices = parse_devices(text)
    assert [(d.serial, d.state) for d in devices] == [
        ("9A281FFAZ001HP", "device"), ("emulator-5554", "offline"),
        ("R58M42ABCDE", "unauthorized"), ("0123456789ABCDEF", "no permissions")]
    assert devices[0].info["model"] == "Pixel_4_XL"


def test_split_marker():
    assert split_marker("a\nb\n__MNAS_RC=3\n") == (3, "a\nb\n")
    assert split_marker("no marker")[0] == -1


def _without_adb_on_path(monkeypatch, tmp_path):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_adb_not_installed_names_the_apt_command(monkeypatch, tmp_path):
    _without_adb_on_path(monkeypatch, tmp_path)
    monkeypatch.setenv("MNAS_TF_ADB", str(tmp_path / "no" / "adb"))
    with pytest.raises(AdbError) as info:
        find_adb()
    assert "apt-get install -y adb" in str(info.value)
    assert "MNAS_TF_ADB" in str(info.value)
    monkeypatch.delenv("MNAS_TF_ADB")
    with pytest.raises(AdbError, match=r"adb is not installed .*apt-get install -y adb"):
        Adb()


def test_no_device(fake_adb):
    fake_adb.set(devices=[])
    with pytest.raises(AdbError, match=r"^no Android device found \(`adb devices` lists "
                                       r"none\); connect a phone with USB debugging"):
        Adb().select()


def test_unauthorized_device(fake_adb):
    fake_adb.set(devices=[["R58M42ABCDE", "unauthorized", "usb:1-2 transport_id:3"]])
    with pytest.raises(AdbError, match=r"^device R58M42ABCDE is unauthorized: unlock the "
                                       r"phone and accept the 'Allow USB debugging\?' prompt"):
        Adb().select()


def test_offline_device(fake_adb):
    fake_adb.set(devices=[["emulator-5554", "offline", ""]])
    with pytest.raises(AdbError, match=r"^device emulator-5554 is offline; reconnect"):
        Adb().select()


def test_several_devices_need_a_serial(fake_adb):
    fake_adb.set(devices=[["AAA111", "device", "model:Pixel_4"],
                          ["BBB222", "device", "model:Pixel_7"]])
    with pytest.raises(AdbError) as info:
        Adb().select()
    assert str(info.value) == ("several devices connected (AAA111 (device, Pixel_4), "
                               "BBB222 (device, Pixel_7)); choose one with --serial SERIAL")
    adb = Adb()
    assert adb.select("BBB222").serial == "BBB222" and adb.serial == "BBB222"


def test_unknown_serial_lists_the_connected_ones(fake_adb):
    with pytest.raises(AdbError, match=r"^device 'NOPE' is not connected \(adb lists: "
                                       r"9A281FFAZ001HP \(device, Pixel_4_XL\)\); pass one"):
        Adb().select("NOPE")


def test_push_failure_shows_adbs_reason(fake_adb, tmp_path):
    fake_adb.set(push_error="adb: error: failed to copy 'm.tflite' to '/data/local/tmp/"
                            "m.tflite': remote write failed: No space left on device")
    local = tmp_path / "m.tflite"
    local.write_bytes(b"x")
    adb = Adb()
    adb.select()
    with pytest.raises(AdbError) as info:
        adb.push(str(local), "/data/local/tmp/m.tflite")
    message = str(info.value)
    assert message.startswith("adb push of m.tflite to /data/local/tmp/m.tflite failed")
    assert "No space left on device" in message and "check free space" in message


def test_dropped_connection_is_retried_after_wait_for_device(fake_adb):
    fake_adb.set(drop={"match": "getprop", "times": 1, "message": "error: device offline"})
    adb = Adb()
    adb.select()
    rc, out = adb.shell("getprop")
    assert rc == 0 and "[ro.product.model]: [Pixel 4 XL]" in out
    verbs = [c[2] for c in fake_adb.calls() if c[:1] == ["-s"]]
    assert verbs == ["shell", "wait-for-device", "shell"]


def test_connection_that_keeps_dropping_gives_up(fake_adb):
    fake_adb.set(drop={"match": "getprop", "times": 9, "message": "error: closed"})
    adb = Adb(retries=2)
    adb.select()
    with pytest.raises(AdbError, match=r"^lost the connection to device 9A281FFAZ001HP 3 "
                                       r"times \(last: error: closed\); check the USB cable"):
        adb.shell("getprop")


def test_other_failures_are_not_retried(fake_adb):
    adb = Adb()
    adb.select()
    rc, out = adb.shell("definitely-not-a-command")
    assert rc == 127 and "unknown to fake adb" in out
    assert not any("wait-for-device" in c for c in fake_adb.calls())


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("adb") is None,
                    reason="needs the real adb client (apt-get install -y adb)")
def test_real_adb_with_no_phone_says_no_device(monkeypatch):
    # A private server port: never touches (or kills) a server someone else is using.
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(_free_port()))
    monkeypatch.delenv("MNAS_TF_ADB", raising=False)
    adb = Adb(timeout_s=30)
    try:
        if adb.devices():
            pytest.skip("a real device is connected to this machine")
        with pytest.raises(AdbError, match=r"^no Android device found"):
            adb.select()
    finally:
        subprocess.run([adb.executable, "kill-server"], capture_output=True, timeout=30,
                       env=os.environ.copy())
