"""Finds architectures by name (configs/architectures/NAME.json), path or inline JSON."""

from __future__ import annotations

import os
from pathlib import Path

from mnas_tf.arch.spec import ArchitectureError, MnasFPNSpec

CONFIG_DIR = Path(os.environ.get("MNAS_TF_CONFIGS", Path(__file__).resolve().parents[2] / "configs"))
ARCH_DIR = CONFIG_DIR / "architectures"


def architecture_names() -> list[str]:
    """Names of the architectures shipped in configs/architectures/."""
    return sorted(p.stem for p in ARCH_DIR.glob("*.json"))


def load_architecture(ref: str | MnasFPNSpec) -> MnasFPNSpec:
    """Resolves `ref`: a spec, inline JSON, a path to a .json file, or a shipped name."""
    if isinstance(ref, MnasFPNSpec):
        return ref
    if not isinstance(ref, str) or not ref.strip():
        raise ArchitectureError(f"architecture reference must be a non-empty string, got {ref!r}")
    text = ref.strip()
    if text.startswith("{"):
        return MnasFPNSpec.from_json(text)
    path = Path(text)
    if path.suffix == ".json" or os.sep in text:
        if not path.is_file():
            raise ArchitectureError(f"architecture file {text} does not exist")
        return _load_file(path)
    named = ARCH_DIR / f"{text}.json"
    if not named.is_file():
        raise ArchitectureError(
            f"unknown architecture {text!r}; shipped ones are {', '.join(architecture_names())}"
            f" (or pass a path to a .json file, or inline JSON)")
    return _load_file(named)


def _load_file(path: Path) -> MnasFPNSpec:
    try:
        return MnasFPNSpec.from_json(path.read_text())
    except ArchitectureError as e:
        raise ArchitectureError(f"{path}: {e}") from None
