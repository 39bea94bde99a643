"""The MSNAS space: exact uniform sampling of valid paths; operators keep validity."""

import itertools

import numpy as np
import pytest

from mnas_tf.arch import ArchitectureError
from mnas_tf.arch.msnas import STRIDE_CHOICES, EncoderSpec, MSNASSpec
from search.spaces.msnas import MSNASSpace, kendall_tau


def _valid_encoders(n):
    out = []
    for strides in itertools.product(STRIDE_CHOICES, repeat=n):
        try:
            out.append(EncoderSpec(strides, 8))
        except ArchitectureError:
            pass
    return out


@pytest.mark.parametrize("n", [1, 3, 6])
def test_valid_path_count_matches_brute_force(n):
    assert MSNASSpace(n, 8).num_encoders() == len(_valid_encoders(n))


def test_sampling_is_uniform_over_valid_encoders():
    space, rng = MSNASSpace(4, 8), np.random.default_rng(0)
    valid = {e.strides for e in _valid_encoders(4)}
    counts = {}
    for _ in range(4000):
        strides = space.sample_encoder(rng).strides
        counts[strides] = counts.get(strides, 0) + 1
    assert set(counts) == valid  # every valid path is reachable, nothing else
    expected = 4000 / len(valid)
    assert max(abs(c - expected) for c in counts.values()) < 5 * expected ** 0.5


def test_samples_are_valid_specs_with_a_utilization():
    space, rng = MSNASSpace(13, 16), np.random.default_rng(1)
    for _ in range(300):
        spec = space.sample(rng)
        assert isinstance(spec, MSNASSpec)
        assert set(spec.feature_strides) <= set(spec.encoder.block_strides())


def test_operators_keep_validity_and_change_the_right_part():
    space, rng = MSNASSpace(13, 16), np.random.default_rng(2)
    produced = {op: 0 for op in ("xe", "me", "xf", "mf")}
    for _ in range(300):
        a, b = space.sample(rng), space.sample(rng)
        for op, child in (("xe", space.crossover_encoder(a, b, rng)),
                          ("me", space.mutate_encoder(a, rng, 0.1)),
                          ("xf", space.crossover_features(a, b, rng)),
                          ("mf", space.mutate_features(a, rng, 0.2))):
            if child is None:
                continue
            produced[op] += 1
            # a child is a fully validated spec (constructing it re-runs every check)
            assert MSNASSpec.from_dict(child.to_dict()) == child
            if op in ("xe", "me"):
                assert child.feature_strides == a.feature_strides
                if op == "me":
                    assert child.encoder.strides != a.encoder.strides
                else:
                    assert all(c in (x, y) for c, x, y in zip(
                        child.encoder.strides, a.encoder.strides, b.encoder.strides))
            else:
                assert child.encoder == a.encoder
                if op == "xf":
                    assert all(c in (x, y) for c, x, y in zip(
                        child.feature_strides, a.feature_strides, b.feature_strides))
    assert all(n > 20 for n in produced.values()), produced


def test_kendall_tau():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


def test_the_program_never_offers_a_dead_end():
    """Single-stride encoders (all-normal; one downsample then all-normal) have no valid
    utilization, so the program steers away from them; heads follow eq. 7 prefixes."""
    space = MSNASSpace(4, 8)
    normal = STRIDE_CHOICES.index(1)
    seen = []

    def choose(kind, name, valid):
        seen.append((name, valid))
        return normal if normal in valid else valid[-1]
    spec = space.run(choose)
    assert [n for n, _ in seen] == space.decision_names()
    assert seen[3][1] == (2,) and spec.encoder.strides == (1, 1, 1, 2)  # not all-normal
    assert seen[4][1] == (0,) and spec.feature_strides[0] == 4  # stride 8 alone would be
    assert len(seen[5][1]) == 2  # 4 or 8: the finest head needs stride <= 8 from 4 and 8
    script, offered = iter([2, 1, 1, 0, 0, 1, 1, 1, 1]), []
    spec = space.run(lambda kind, name, valid: offered.append(valid) or next(script))
    assert offered[3] == (0, 2)  # after (2, 1, 1) a normal block would leave only stride 8
    assert spec.to_dict()["strides"] == [2, 1, 1, 0.5]
    for spec in map(space.decode, [space.sample_decisions(np.random.default_rng(s))
                                   for s in range(50)]):
        assert len(set(spec.encoder.block_strides())) > 1
