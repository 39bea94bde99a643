"""The MSNAS space's ablation settings (paper §4.3): `utilization: fpn` (Table 2) and
`constraints: false` (Table 3), counted by brute force on small spaces and followed by the
sampler, the decision program and the evolution's variations."""

import itertools

import numpy as np
import pytest

from mnas_tf.arch.msnas import (FEATURE_STRIDES, STRIDE_CHOICES, ArchitectureError,
                                EncoderSpec, MSNASSpec, range_constraint_error)
from search.spaces import get_space
from tests.search.spaces.test_spaces_cardinality import enumerate_sequences


def _pairs(n, fpn=False, constraints=True):
    """(encoder, utilization) pairs by brute force over stride paths and all 5-tuples."""
    out = set()
    for strides in itertools.product(STRIDE_CHOICES, repeat=n):
        try:
            encoder = EncoderSpec(strides, 8)
        except ArchitectureError:
            continue
        produced = set(encoder.block_strides())
        for u in itertools.product(FEATURE_STRIDES, repeat=5):
            if not set(u) <= produced or list(u) != sorted(u):
                continue
            if fpn and u != FEATURE_STRIDES:
                continue
            if constraints and range_constraint_error(u) is not None:
                continue
            out.add((encoder.strides, u))
    return out


@pytest.mark.parametrize("n, overrides", [
    (4, {"constraints": False}),
    (5, {"constraints": False}),
    (5, {"utilization": "fpn"}),
    (6, {"utilization": "fpn"}),
    (6, {"utilization": "fpn", "constraints": False}),
])
def test_ablated_spaces_are_exactly_their_pairs(n, overrides):
    space = get_space("msnas", {"num_blocks": n, "channels": 8, **overrides})
    pairs = _pairs(n, overrides.get("utilization") == "fpn", overrides.get("constraints", True))
    assert space.cardinality() == len(pairs) > 0
    sequences = enumerate_sequences(space)
    decoded = {(s.encoder.strides, s.feature_strides) for s in map(space.decode, sequences)}
    assert len(sequences) == len(pairs) and decoded == pairs
    rng = np.random.default_rng(0)
    for _ in range(50):
        spec = space.sample(rng)
        assert (spec.encoder.strides, spec.feature_strides) in pairs and space.admits(spec)


def test_unconstrained_space_reaches_single_stride_encoders():
    """Without eq. 7's ranges the all-normal encoder has a utilization: every head on 4."""
    space = get_space("msnas", {"num_blocks": 3, "channels": 8, "constraints": False})
    spec = MSNASSpec.build((1, 1, 1), 8, (4, 4, 4, 4, 4))
    assert space.admits(spec) and space.decode(space.encode(spec)) == spec
    constrained = get_space("msnas", {"num_blocks": 3, "channels": 8})
    assert not constrained.admits(spec)
    with pytest.raises(Exception):
        constrained.encode(spec)
    rng = np.random.default_rng(1)
    seen = [get_space("msnas", {"constraints": False}).sample(rng).feature_strides
            for _ in range(300)]
    assert any(range_constraint_error(s) is not None for s in seen)


def test_fpn_style_space_searches_the_encoder_only():
    space = get_space("msnas", {"num_blocks": 8, "channels": 8, "utilization": "fpn"})
    assert [v.name for v in space.variations()] == ["crossover_encoder", "mutate_encoder"]
    rng = np.random.default_rng(0)
    parents = [space.sample(rng) for _ in range(6)]
    children = [v.apply([a, b][:v.arity], rng, 0.3) for a in parents for b in parents
                for v in space.variations()]
    assert any(c is not None for c in children)
    assert all(c.feature_strides == FEATURE_STRIDES for c in children if c is not None)
    assert space.describe()["utilization"] == "fpn"
    # the searched space's feature operators never hand back a child outside the space
    searched = get_space("msnas", {"num_blocks": 8, "channels": 8})
    kids = [searched.mutate_features(p, rng, 0.5) for p in parents for _ in range(20)]
    assert all(searched.admits(k) for k in kids if k is not None)


def test_too_shallow_for_fpn_style_is_one_clear_error():
    space = get_space("msnas", {"num_blocks": 4, "channels": 8, "utilization": "fpn"})
    assert space.cardinality() == 0
    with pytest.raises(ValueError, match=r"no 4-block encoder .*\(utilization fpn\)"):
        space.sample(np.random.default_rng(0))


@pytest.mark.parametrize("overrides, problem", [
    ({"utilization": "FPN"}, "utilization must be one of searched, fpn"),
    ({"constraints": "no"}, "constraints must be true or false"),
    ({"constraints": 0}, "constraints must be true or false"),
])
def test_bad_ablation_settings(overrides, problem):
    with pytest.raises(ValueError, match=problem):
        get_space("msnas", overrides)
