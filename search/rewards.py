"""Latency-aware rewards (MnasNet / MnasFPN): accuracy traded against latency / target.

    mnas       mAP * (lat / T) ** w           soft: faster than T earns a bonus (w < 0)
    mnas_hard  mAP * min((lat / T) ** w, 1)   no bonus below T, penalty above it
    abs        mAP + w * |lat / T - 1|        TuNAS's absolute-value reward (w < 0)

w must be negative: with w >= 0 a slower model would score higher.
"""

from __future__ import annotations

REWARDS = ("mnas", "mnas_hard", "abs")


def check_reward(kind: str, target_ms: float, w: float) -> None:
    if kind not in REWARDS:
        raise ValueError(f"reward.kind {kind!r} is unknown; valid kinds are {', '.join(REWARDS)}")
    if target_ms is not None and not target_ms > 0:
        raise ValueError(f"reward.target_ms must be positive, got {target_ms}")
    if not w < 0:
        raise ValueError(f"reward.w must be negative for a latency penalty, got {w}")


def reward(kind: str, map_: float, latency_ms: float, target_ms: float, w: float) -> float:
    ratio = latency_ms / target_ms
    if kind == "mnas":
        return map_ * ratio ** w
    if kind == "mnas_hard":
        return map_ * min(ratio ** w, 1.0)
    if kind == "abs":
        return map_ + w * abs(ratio - 1.0)
    raise ValueError(f"reward.kind {kind!r} is unknown; valid kinds are {', '.join(REWARDS)}")
