"""The MSNAS search space: uniform valid paths, the evolution's variation operators, and
a decision program (so PPO, the toy objective and the generic operators work on it too).

Encoders are drawn uniformly over VALID stride paths (a count of valid completions per
(block, stride) makes each draw exact, no rejection); the heads' strides are then drawn
uniformly over the eq.-7-valid choices the encoder offers. Crossover and mutation act on
the encoder strides or on the feature strides separately (paper Algorithm 1) and return
None when the child is invalid, so callers count the attempt and move on.

The decision program asks `block{i}.stride` for every block, then `head{g}.feature_stride`
for the five heads. A stride is offered only when some completion of the encoder still has
an eq.-7-valid utilization (the encoders producing a single stride, e.g. all-normal, have
none), and a head stride only when it prefixes a valid utilization of the encoder: every
accepted sequence is a valid MSNASSpec, and the sequences are exactly the (valid encoder,
valid utilization) pairs, which `cardinality` counts.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar, Optional

import numpy as np

from mnas_tf.arch.msnas import (FEATURE_STRIDES, MAX_STRIDE, MIN_STRIDE, STEM_STRIDE,
                                STRIDE_CHOICES, ArchitectureError, EncoderSpec, MSNASSpec,
                                UtilizationSpec, valid_utilizations)

UTILIZATIONS = ("searched", "fpn")  # searched: §3.3; fpn: Table 2's FPN-style ablation
FPN_STYLE = FEATURE_STRIDES  # s = (4, 8, 16, 32, 64), "the configuration counterpart of FPN"
from mnas_tf.spaces import DecisionError
from search.spaces.base import SearchSpace, Variation
from search.fidelity import kendall_tau  # noqa: F401  (re-exported)

_LOG = {2 ** k: k for k in range(1, 8)}
_STEP = {0.5: -1, 1: 0, 2: 1}


@functools.lru_cache(maxsize=None)
def _utilizations(levels: frozenset, utilization: str = "searched",
                  constraints: bool = True) -> tuple[tuple[int, ...], ...]:
    """The utilizations a space offers an encoder producing these log2 strides."""
    available = [2 ** level for level in levels]
    if utilization == "fpn":
        return (FPN_STYLE,) if set(FPN_STYLE) <= set(available) else ()
    return tuple(valid_utilizations(available, range_constraints=constraints))


@dataclasses.dataclass(frozen=True)
class MSNASSpace(SearchSpace):
    """`num_blocks` mixed blocks, all `channels` wide; five heads.

    The ablations of paper §4.3 are settings of the space: `utilization: fpn` fixes every
    path's heads to FPN's strides (4, 8, 16, 32, 64), so only encoders producing all five
    remain and only the encoder is searched (Table 2); `constraints: false` drops eq. 7's
    range constraints (min s <= 8, max s >= 8, min s != max s) while keeping s
    non-decreasing, which the paper assumes outside the constraints (Table 3). The
    super-net samples, the evolution's variations and the decision program all follow.
    """

    num_blocks: int = 13
    channels: int = 180
    utilization: str = "searched"
    constraints: bool = True
    name: ClassVar[str] = "msnas"
    cell_space: ClassVar = None

    def __post_init__(self):
        for field in ("num_blocks", "channels"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"space 'msnas': {field} must be a positive integer, got "
                                 f"{value!r}")
        if self.utilization not in UTILIZATIONS:
            raise ValueError(f"space 'msnas': utilization must be one of "
                             f"{', '.join(UTILIZATIONS)}, got {self.utilization!r}")
        if not isinstance(self.constraints, bool):
            raise ValueError(f"space 'msnas': constraints must be true or false, got "
                             f"{self.constraints!r}")

    def _options(self, levels: frozenset) -> tuple[tuple[int, ...], ...]:
        """The utilizations this space offers an encoder producing these log2 strides."""
        return _utilizations(levels, self.utilization, self.constraints)

    def utilizations_of(self, encoder: EncoderSpec) -> tuple[tuple[int, ...], ...]:
        return self._options(frozenset(_LOG[s] for s in encoder.block_strides()))

    def admits(self, spec: MSNASSpec) -> bool:
        """Whether the spec is a point of this space (its blocks, width and utilization)."""
        return (spec.encoder.num_blocks == self.num_blocks
                and spec.encoder.channels == self.channels
                and spec.feature_strides in self.utilizations_of(spec.encoder))

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

        The encoders producing a single stride (all-normal, or one downsample then
        all-normal) have no valid utilization; they are redrawn.
        """
        if not self._feasible(0, _LOG[STEM_STRIDE], frozenset()):
            raise ValueError(f"space 'msnas': no {self.num_blocks}-block encoder has a valid "
                             f"feature utilization{self._settings_note()}")
        while True:
            encoder = self.sample_encoder(rng)
            options = self.utilizations_of(encoder)
            if options:
                return MSNASSpec(encoder,
                                 UtilizationSpec(options[int(rng.integers(len(options)))]))

    # ---------------------------------------------------------------- the program
    @property
    def kinds(self) -> dict[str, tuple]:
        return {"stride": STRIDE_CHOICES, "feature_stride": FEATURE_STRIDES}

    def decision_names(self) -> list[str]:
        return ([f"block{i}.stride" for i in range(self.num_blocks)]
                + [f"head{g}.feature_stride" for g in range(len(FEATURE_STRIDES))])

    @functools.cached_property
    def _feasible(self):
        """feasible(i, level, produced): whether blocks i.. can finish (from log2 stride
        `level`, having produced these levels) into an encoder with a valid utilization."""
        lo, hi = _LOG[MIN_STRIDE], _LOG[MAX_STRIDE]

        @functools.lru_cache(maxsize=None)
        def feasible(i, level, produced):
            if i == self.num_blocks:
                return bool(self._options(produced))
            return any(feasible(i + 1, level + _STEP[s], produced | {level + _STEP[s]})
                       for s in STRIDE_CHOICES if lo <= level + _STEP[s] <= hi)
        return feasible

    def run(self, choose) -> MSNASSpec:
        level, produced, strides = _LOG[STEM_STRIDE], frozenset(), []
        for i in range(self.num_blocks):
            valid = [j for j, s in enumerate(STRIDE_CHOICES)
                     if self._next_ok(i, level + _STEP[s], produced)]
            if not valid:
                raise DecisionError(f"space 'msnas': no {self.num_blocks}-block encoder has a "
                                    f"valid feature utilization{self._settings_note()}")
            s = STRIDE_CHOICES[choose("stride", f"block{i}.stride", tuple(valid))]
            strides.append(s)
            level += _STEP[s]
            produced |= {level}
        options = self._options(produced)
        chosen: list[int] = []
        for g in range(len(FEATURE_STRIDES)):
            allowed = {u[g] for u in options if list(u[:g]) == chosen}
            valid = tuple(j for j, f in enumerate(FEATURE_STRIDES) if f in allowed)
            chosen.append(FEATURE_STRIDES[choose("feature_stride", f"head{g}.feature_stride",
                                                 valid)])
        return MSNASSpec.build(tuple(strides), self.channels, tuple(chosen))

    def _next_ok(self, i: int, level: int, produced: frozenset) -> bool:
        lo, hi = _LOG[MIN_STRIDE], _LOG[MAX_STRIDE]
        return lo <= level <= hi and self._feasible(i + 1, level, produced | {level})

    def encode(self, spec: MSNASSpec) -> list[int]:
        if not isinstance(spec, MSNASSpec):
            raise DecisionError(f"space 'msnas' holds MSNAS architectures, got "
                                f"{type(spec).__name__}")
        if spec.encoder.num_blocks != self.num_blocks:
            raise DecisionError(f"space 'msnas' has {self.num_blocks} blocks, the spec "
                                f"{spec.encoder.num_blocks}")
        if spec.encoder.channels != self.channels:
            raise DecisionError(f"space 'msnas' has {self.channels} channels, the spec "
                                f"{spec.encoder.channels}")
        decisions = ([STRIDE_CHOICES.index(s) for s in spec.encoder.strides]
                     + [FEATURE_STRIDES.index(f) for f in spec.feature_strides])
        self.decode(decisions)  # a valid spec always decodes; this guards the contract
        return decisions

    # ---------------------------------------------------------------- points
    def key(self, spec: MSNASSpec) -> dict:
        return spec.search_key()

    def spec(self, arch: dict) -> MSNASSpec:
        return MSNASSpec.from_dict(arch)

    # ---------------------------------------------------------------- size
    def cardinality(self) -> int:
        """(valid encoder, valid utilization) pairs: a DP over (block, log2 stride, set of
        strides produced so far) counts the encoders per produced set."""
        lo, hi = _LOG[MIN_STRIDE], _LOG[MAX_STRIDE]
        paths = {(_LOG[STEM_STRIDE], frozenset()): 1}
        for _ in range(self.num_blocks):
            step: dict = {}
            for (level, produced), count in paths.items():
                for s in STRIDE_CHOICES:
                    nxt = level + _STEP[s]
                    if lo <= nxt <= hi:
                        state = (nxt, produced | {nxt})
                        step[state] = step.get(state, 0) + count
            paths = step
        return sum(count * len(self._options(produced))
                   for (_, produced), count in paths.items())

    def _settings_note(self) -> str:
        ablated = [f"utilization {self.utilization}"] * (self.utilization != "searched") \
            + ["no range constraints"] * (not self.constraints)
        return f" ({', '.join(ablated)})" if ablated else ""

    def describe(self) -> dict:
        cardinality = self.cardinality()
        return {"space": self.name, "name": self.name, "family": "msnas",
                "cardinality": float(cardinality),
                "log10_cardinality": math.log10(cardinality) if cardinality else None,
                "decisions": len(self.decision_names()), "num_blocks": self.num_blocks,
                "channels": self.channels, "utilization": self.utilization,
                "constraints": self.constraints,
                "choices": {kind: list(values) for kind, values in self.kinds.items()}}

    # ---------------------------------------------------------------- variation
    def variations(self) -> list[Variation]:
        """The paper's Algorithm 1 operators (default probabilities when prob is None);
        with FPN-style utilization only the encoder's (the heads' strides are fixed)."""
        operators = [
            Variation("crossover_encoder", 2, lambda parents, rng, prob=None:
                      self.crossover_encoder(parents[0], parents[1], rng)),
            Variation("mutate_encoder", 1, lambda parents, rng, prob=None:
                      self.mutate_encoder(parents[0], rng, 0.1 if prob is None else prob)),
            Variation("crossover_features", 2, lambda parents, rng, prob=None:
                      self.crossover_features(parents[0], parents[1], rng)),
            Variation("mutate_features", 1, lambda parents, rng, prob=None:
                      self.mutate_features(parents[0], rng, 0.2 if prob is None else prob)),
        ]
        if self.utilization == "fpn":
            operators = [v for v in operators if v.name.endswith("_encoder")]
        return operators

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
        return self._try(strides, spec.feature_strides)

    def crossover_encoder(self, a: MSNASSpec, b: MSNASSpec,
                          rng: np.random.Generator) -> Optional[MSNASSpec]:
        mask = rng.random(self.num_blocks) < 0.5
        strides = [x if m else y for x, y, m in zip(a.encoder.strides, b.encoder.strides, mask)]
        return self._try(strides, a.feature_strides)

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
        return self._try(spec.encoder.strides, fs)

    def crossover_features(self, a: MSNASSpec, b: MSNASSpec,
                           rng: np.random.Generator) -> Optional[MSNASSpec]:
        mask = rng.random(len(a.feature_strides)) < 0.5
        fs = [x if m else y for x, y, m in zip(a.feature_strides, b.feature_strides, mask)]
        return self._try(a.encoder.strides, fs)

    def _try(self, strides, feature_strides) -> Optional[MSNASSpec]:
        """The child, or None when it is not a point of this space."""
        try:
            spec = MSNASSpec.build(tuple(strides), self.channels, tuple(feature_strides))
        except ArchitectureError:
            return None
        return spec if self.admits(spec) else None


def _other(value, choices, rng):
    others = [c for c in choices if c != value]
    return others[int(rng.integers(len(others)))]
