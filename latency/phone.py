"""Pure functions on phone facts: getprop dumps, cpufreq tables, core masks, ELF arch.

Kept apart from the adb plumbing so the decisions (which cores count as "big", whether a
binary can run on this ABI) are unit-testable without a phone or a fake adb.
"""

from __future__ import annotations

import re
from typing import Optional

_GETPROP = re.compile(r"^\[([^\]]+)\]:\s*\[(.*)\]\s*$")
_CPUFREQ = re.compile(r"cpu(\d+)/cpufreq/cpuinfo_max_freq\s+(\d+)\s*$")
_ELF_MACHINES = {0x03: "x86", 0x28: "arm", 0x3E: "x86_64", 0xB7: "aarch64"}
# ABI (ro.product.cpu.abi) -> binary architectures that run on it.
_ABI_RUNS = {"arm64-v8a": {"aarch64", "arm"}, "armeabi-v7a": {"arm"}, "armeabi": {"arm"},
             "x86_64": {"x86_64", "x86"}, "x86": {"x86"}}


def parse_getprop(text: str) -> dict[str, str]:
    """`getprop` output (`[key]: [value]` lines) as a dict."""
    props = {}
    for line in text.replace("\r", "").splitlines():
        m = _GETPROP.match(line.strip())
        if m:
            props[m.group(1)] = m.group(2)
    return props


def parse_cpufreq(text: str) -> dict[int, int]:
    """{cpu index: cpuinfo_max_freq kHz} from `<path> <value>` lines; offline cores skipped."""
    freqs = {}
    for line in text.replace("\r", "").splitlines():
        m = _CPUFREQ.search(line.strip())
        if m:
            freqs[int(m.group(1))] = int(m.group(2))
    return freqs


def big_core_mask(max_freqs: dict[int, int], threads: int = 1) -> tuple[str, list[int]]:
    """taskset mask (hex, no 0x) of the fastest cores, and those cores.

    The cores sharing the highest max frequency form the mask (4x1.8 GHz + 4x2.4 GHz ->
    cores 4-7 -> 'f0'; on a tri-cluster SoC the prime core alone). When `threads` exceeds
    that cluster, the next-fastest cluster is added until every thread has a core.
    """
    if not max_freqs:
        raise ValueError("no cpufreq data")
    cores: list[int] = []
    for freq in sorted(set(max_freqs.values()), reverse=True):
        cores += sorted(c for c, f in max_freqs.items() if f == freq)
        if len(cores) >= threads:
            break
    mask = sum(1 << c for c in cores)
    return format(mask, "x"), sorted(cores)


def valid_mask(mask: str) -> bool:
    """A non-zero hex CPU mask as toybox taskset takes it (no 0x prefix needed)."""
    m = mask[2:] if mask.lower().startswith("0x") else mask
    return bool(re.fullmatch(r"[0-9a-fA-F]+", m)) and int(m, 16) > 0


def elf_arch(path: str) -> Optional[str]:
    """CPU architecture of an ELF executable, 'unknown' for other ELF, None if not ELF."""
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "little" if head[5] == 1 else "big"
    return _ELF_MACHINES.get(int.from_bytes(head[18:20], order), "unknown")


def abi_runs(abi: str, arch: str) -> bool:
    """Whether a binary for `arch` can execute on a phone whose primary ABI is `abi`."""
    allowed = _ABI_RUNS.get(abi)
    return True if allowed is None or arch == "unknown" else arch in allowed
