"""The MSNAS search space: uniform valid paths and the evolution's variation operators.

Encoders are drawn uniformly over VALID stride paths (a count of valid completions per
(block, stride) makes each draw exact, no rejection); the heads' strides are then drawn
uniformly over the eq.-7-valid choices the encoder offers. Crossover and mutation act on
the encoder strides or on the feature strides separately (paper Algorithm 1) and return
None when the child is invalid, so callers count the attempt and move on.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import numpy as np

from mnas_tf.arch.msnas import (MAX_STRIDE, MIN_STRIDE, STEM_STRIDE, STRIDE_CHOICES,
                                ArchitectureError, EncoderSpec, MSNASSpec, UtilizationSpec,
                                valid_utilizations)

_LOG = {2 ** k: k for k in range(1, 8)}
_STEP = {0.5: -1, 1: 0, 2: 1}


@dataclasses.dataclass(frozen=True)
class MSNASSpace:
    num_blocks: int = 13
    channels: int = 180

    @functools.cached_property
    def _completions(self) -> list[dict[int, int]]:
        """_completions[i][level]: valid ways to finish blocks i.. from log2-stride level."""
        lo, hi = _LOG[MIN_STRIDE], _LOG[MAX_STRIDE]
        table = [dict.fromkeys(range(lo, hi + 1), 0) for _ in range(self.num_blocks + 1)]
        table[self.num_blocks] = dict.fromkeys(range(lo, hi + 1), 1)
        for i in range(self.num_blocks - 1, -1, -1):
            for level in range(lo, hi + 1):
                table[i][level] = sum(table[i + 1].get(level + _STEP[s], 0)
                                      for s in STRIDE_CHOICES)
        return table

    def num_encoders(self) -> int:
        return self._completions[0][_LOG[STEM_STRIDE]]

    def sample_encoder(self, rng: np.random.Generator) -> EncoderSpec:
        level, strides = _LOG[STEM_STRIDE], []
        for i in range(self.num_blocks):
            weights = np.array([self._completions[i + 1].get(level + _STEP[s], 0)
                                for s in STRIDE_CHOICES], float)
            s = STRIDE_CHOICES[int(rng.choice(3, p=weights / weights.sum()))]
            strides.append(s)
            level += _STEP[s]
        return EncoderSpec(tuple(strides), self.channels)

    def sample(self, rng: np.random.Generator) -> MSNASSpec:
        """A uniform valid encoder, then a uniform valid utilization for it.

        Only the all-normal encoder (everything at stride 4) has no valid utilization;
        it is redrawn.
        """
        while True:
            encoder = self.sample_encoder(rng)
            options = valid_utilizations(encoder.block_strides())
            if options:
                return MSNASSpec(encoder,
                                 UtilizationSpec(options[int(rng.integers(len(options)))]))

    # ---------------------------------------------------------------- variation
    def mutate_encoder(self, spec: MSNASSpec, rng: np.random.Generator,
                       prob: float = 0.1) -> Optional[MSNASSpec]:
        strides = list(spec.encoder.strides)
        changed = False
        for i in range(len(strides)):
            if rng.random() < prob:
                strides[i] = _other(strides[i], STRIDE_CHOICES, rng)
                changed = True
        if not changed:  # a mutation changes at least one gene
            i = int(rng.integers(len(strides)))
            strides[i] = _other(strides[i], STRIDE_CHOICES, rng)
        return _try(strides, spec.feature_strides, self.channels)

    def crossover_encoder(self, a: MSNASSpec, b: MSNASSpec,
                          rng: np.random.Generator) -> Optional[MSNASSpec]:
        mask = rng.random(self.num_blocks) < 0.5
        strides = [x if m else y for x, y, m in zip(a.encoder.strides, b.encoder.strides, mask)]
        return _try(strides, a.feature_strides, self.channels)

    def mutate_features(self, spec: MSNASSpec, rng: np.random.Generator,
                        prob: float = 0.2) -> Optional[MSNASSpec]:
        available = sorted(set(spec.encoder.block_strides()))
        fs = list(spec.feature_strides)
        changed = False
        for g in range(len(fs)):
            if rng.random() < prob and len(available) > 1:
                fs[g] = _other(fs[g], available, rng)
                changed = True
        if not changed and len(available) > 1:
            g = int(rng.integers(len(fs)))
            fs[g] = _other(fs[g], available, rng)
        return _try(spec.encoder.strides, fs, self.channels)

    def crossover_features(self, a: MSNASSpec, b: MSNASSpec,
                           rng: np.random.Generator) -> Optional[MSNASSpec]:
        mask = rng.random(len(a.feature_strides)) < 0.5
        fs = [x if m else y for x, y, m in zip(a.feature_strides, b.feature_strides, mask)]
        return _try(a.encoder.strides, fs, self.channels)


def _other(value, choices, rng):
    others = [c for c in choices if c != value]
    return others[int(rng.integers(len(others)))]


def _try(strides, feature_strides, channels) -> Optional[MSNASSpec]:
    try:
        return MSNASSpec.build(tuple(strides), channels, tuple(feature_strides))
    except ArchitectureError:
        return None


def kendall_tau(x, y) -> float:
    """Kendall's tau-b (scipy), NaN when a side is constant."""
    from scipy import stats
    if len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(stats.kendalltau(x, y).statistic)
