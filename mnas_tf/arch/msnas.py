"""MSNAS architectures (stride search + feature utilization) as frozen, validated data.

An encoder is a stem to stride 4 then N mixed blocks; block i has a *relative* stride in
{0.5 (upsample: interpolate, then conv), 1 (normal), 2 (downsample)}. Its *absolute*
output stride (input pixels per feature pixel) must stay within 4..64, else the path is
invalid (paper §3.2) and the error names the first block that leaves the range.

Stages and laterals (paper eq. 4-6): a stage is a scale-changing block plus the normal
blocks that follow it (the first block opens the first stage whatever its stride). The
last block of every stage, and the final block, adds the 1x1 lateral conv of block r_i:
the nearest earlier block with the same absolute stride that belongs to another stage.
Scanning back from the stage's first block, the first same-stride block met is the last
block of its stage, so r_i is always a stage end, as eq. 6 requires. The stem is not a
mixed block and never feeds a lateral.

Feature utilization (paper §3.3): G=5 heads, head g reads the encoder feature of
absolute stride s_g. When several blocks output that stride, the head reads the LAST one
(deepest; it is a stage end, so it also carries that stride's lateral). s is
non-decreasing and the encoder must produce every s_g; eq. 7's range constraints (min <= 8,
max >= 8, min != max) belong to the search space, which can drop them (Table 3).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from mnas_tf.arch.spec import ArchitectureError, _check_keys, parse_json

STRIDE_CHOICES = (0.5, 1, 2)
STEM_STRIDE = 4
MIN_STRIDE, MAX_STRIDE = 4, 64
FEATURE_STRIDES = (4, 8, 16, 32, 64)
NUM_GROUPS = 5
FIRST_GROUP_LEVEL = 2  # group g's anchors are FPN level g+2's (sizes 2^(g+2) * anchor_size)


def _relative(value: Any, where: str) -> float:
    if isinstance(value, bool) or value not in STRIDE_CHOICES:
        raise ArchitectureError(f"{where}: stride {value!r} is not allowed; choose one of "
                                f"{', '.join(map(str, STRIDE_CHOICES))}")
    return 0.5 if value == 0.5 else int(value)


def _apply(stride: int, relative: float) -> int:
    return stride // 2 if relative == 0.5 else stride * int(relative)


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """A stem to stride 4 and one mixed block per entry of `strides`, all `channels` wide."""

    strides: tuple
    channels: int

    def __post_init__(self):
        if not isinstance(self.strides, (list, tuple)) or not self.strides:
            raise ArchitectureError(f"encoder, field 'strides': expected a non-empty list, "
                                    f"got {self.strides!r}")
        object.__setattr__(self, "strides", tuple(
            _relative(s, f"encoder block {i}") for i, s in enumerate(self.strides)))
        if isinstance(self.channels, bool) or not isinstance(self.channels, int) \
                or self.channels <= 0:
            raise ArchitectureError(f"encoder, field 'channels': must be a positive integer, "
                                    f"got {self.channels!r}")
        stride = STEM_STRIDE
        for i, s in enumerate(self.strides):
            stride = _apply(stride, s)
            if not MIN_STRIDE <= stride <= MAX_STRIDE:
                raise ArchitectureError(
                    f"encoder block {i} (stride {s}) outputs stride {stride}: every "
                    f"block output must have stride {MIN_STRIDE}..{MAX_STRIDE} "
                    f"(strides so far: {list(self.block_strides(upto=i))})")

    @property
    def num_blocks(self) -> int:
        return len(self.strides)

    def block_strides(self, upto: Optional[int] = None) -> tuple[int, ...]:
        """Absolute output stride of each block (of blocks 0..upto-1 when given)."""
        out, stride = [], STEM_STRIDE
        for s in self.strides[:upto]:
            stride = _apply(stride, s)
            out.append(stride)
        return tuple(out)

    def stage_starts(self) -> tuple[int, ...]:
        """Index of the first block of the stage each block belongs to."""
        starts, start = [], 0
        for i, s in enumerate(self.strides):
            if i > 0 and s != 1:
                start = i
            starts.append(start)
        return tuple(starts)

    def stage_ends(self) -> tuple[bool, ...]:
        """Eq. 5's condition: the next block changes resolution, or this is the last."""
        n = self.num_blocks
        return tuple(i == n - 1 or self.strides[i + 1] != 1 for i in range(n))

    def lateral_sources(self) -> tuple[Optional[int], ...]:
        """r_i of eq. 6 for every block (None: lat_i = 0)."""
        strides, starts, ends = self.block_strides(), self.stage_starts(), self.stage_ends()
        sources = []
        for i in range(self.num_blocks):
            source = None
            if ends[i]:
                source = next((k for k in range(starts[i] - 1, -1, -1)
                               if strides[k] == strides[i]), None)
            sources.append(source)
        return tuple(sources)

    def feature_blocks(self) -> dict[int, int]:
        """Absolute stride -> the last block that outputs it (the block heads read)."""
        return {s: i for i, s in enumerate(self.block_strides())}

    def to_dict(self) -> dict[str, Any]:
        return {"strides": list(self.strides), "channels": self.channels}


@dataclasses.dataclass(frozen=True)
class UtilizationSpec:
    """s_g for the G=5 detection heads: allowed strides, non-decreasing.

    Eq. 7's range constraints (min <= 8 <= max, min != max) are not checked here: the
    paper designs them "for more efficient search" and ablates them (Table 3), so an
    architecture outside them is still a detector. The search space applies them
    (`range_constraint_error`, `valid_utilizations`)."""

    strides: tuple

    def __post_init__(self):
        s = self.strides
        if not isinstance(s, (list, tuple)) or len(s) != NUM_GROUPS:
            raise ArchitectureError(f"utilization, field 'feature_strides': need "
                                    f"{NUM_GROUPS} strides (one per head), got {s!r}")
        object.__setattr__(self, "strides", tuple(s))
        for g, v in enumerate(s):
            if isinstance(v, bool) or v not in FEATURE_STRIDES:
                raise ArchitectureError(f"utilization head {g}: stride {v!r} is not one of "
                                        f"{', '.join(map(str, FEATURE_STRIDES))}")
        for g in range(NUM_GROUPS - 1):
            if s[g] > s[g + 1]:
                raise ArchitectureError(f"utilization head {g + 1}: stride {s[g + 1]} is "
                                        f"below head {g}'s {s[g]}; strides must not decrease")


def range_constraint_error(strides: Sequence[int]) -> Optional[str]:
    """Why `strides` breaks eq. 7's range constraints, or None when it meets them."""
    if min(strides) > 8:
        return f"utilization: the finest head stride {min(strides)} must be <= 8"
    if max(strides) < 8:
        return f"utilization: the coarsest head stride {max(strides)} must be >= 8"
    if min(strides) == max(strides):
        return (f"utilization: all heads use stride {min(strides)}; at least two different "
                f"strides are required")
    return None


def valid_utilizations(available: Sequence[int],
                       range_constraints: bool = True) -> list[tuple[int, ...]]:
    """Every non-decreasing s whose strides are all in `available`; with
    `range_constraints`, only those meeting eq. 7's ranges too."""
    options = sorted(set(available) & set(FEATURE_STRIDES))
    return [combo for combo in itertools.combinations_with_replacement(options, NUM_GROUPS)
            if not range_constraints or range_constraint_error(combo) is None]


@dataclasses.dataclass(frozen=True)
class MSNASSpec:
    """An encoder, the heads' feature strides, and an optional name.

    JSON: {"name", "channels", "strides", "feature_strides"}, plus an optional free-text
    "source" (provenance, e.g. the paper table row) that is not part of the architecture.
    """

    encoder: EncoderSpec
    utilization: UtilizationSpec
    name: str = ""

    def __post_init__(self):
        produced = set(self.encoder.block_strides())
        for g, s in enumerate(self.utilization.strides):
            if s not in produced:
                raise ArchitectureError(
                    f"utilization head {g}: no encoder block outputs stride {s} (the encoder "
                    f"outputs {sorted(produced)})")

    @classmethod
    def build(cls, strides: Sequence, channels: int, feature_strides: Sequence[int],
              name: str = "") -> "MSNASSpec":
        return cls(EncoderSpec(tuple(strides), channels),
                   UtilizationSpec(tuple(feature_strides)), name)

    @property
    def feature_strides(self) -> tuple[int, ...]:
        return self.utilization.strides

    def head_blocks(self) -> tuple[int, ...]:
        """The block each head reads (the last block at its stride)."""
        blocks = self.encoder.feature_blocks()
        return tuple(blocks[s] for s in self.feature_strides)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "channels": self.encoder.channels,
                "strides": list(self.encoder.strides),
                "feature_strides": list(self.feature_strides)}

    def search_key(self) -> dict[str, Any]:
        """What identifies the architecture in a search (no name)."""
        data = self.to_dict()
        data.pop("name")
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MSNASSpec":
        _check_keys("msnas architecture", data, ("name", "source", "channels", "strides",
                                                 "feature_strides"),
                    ("channels", "strides", "feature_strides"))
        return cls.build(data["strides"], data["channels"], data["feature_strides"],
                         data.get("name", ""))

    @classmethod
    def from_json(cls, text: str) -> "MSNASSpec":
        return cls.from_dict(parse_json(text, "msnas architecture"))


MSNAS_DIR = Path(os.environ.get("MNAS_TF_CONFIGS", Path(__file__).resolve().parents[2]
                                / "configs")) / "architectures" / "msnas"


def msnas_names() -> list[str]:
    """Shipped MSNAS architectures (configs/architectures/msnas/NAME.json)."""
    return sorted(p.stem for p in MSNAS_DIR.glob("*.json"))


def load_msnas(ref: Any) -> MSNASSpec:
    """A spec, its dict, inline JSON, a .json path, or a shipped name."""
    if isinstance(ref, MSNASSpec):
        return ref
    if isinstance(ref, Mapping):
        return MSNASSpec.from_dict(ref)
    if not isinstance(ref, str) or not ref.strip():
        raise ArchitectureError(f"msnas architecture must be a non-empty string, got {ref!r}")
    text = ref.strip()
    if text.startswith("{"):
        return MSNASSpec.from_json(text)
    path = Path(text) if text.endswith(".json") else MSNAS_DIR / f"{text}.json"
    if not path.is_file():
        raise ArchitectureError(f"unknown msnas architecture {text!r}; shipped ones are "
                                f"{', '.join(msnas_names())} (or a .json path, or inline JSON)")
    try:
        return MSNASSpec.from_json(path.read_text())
    except ArchitectureError as e:
        raise ArchitectureError(f"{path}: {e}") from None
