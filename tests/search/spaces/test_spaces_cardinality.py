"""`cardinality()` is exact: it equals the number of decision sequences the program
accepts (enumerated by brute force), and for MSNAS the number of (valid encoder, valid
utilization) pairs."""

import itertools

import pytest

from mnas_tf.arch import ArchitectureError
from mnas_tf.arch.msnas import STRIDE_CHOICES, EncoderSpec, valid_utilizations
from search.spaces import get_space


class _Branch(Exception):
    pass


def enumerate_sequences(space) -> list[tuple[int, ...]]:
    """Every sequence `run` accepts: replay a prefix, branch on the next decision."""
    out = []

    def walk(prefix):
        def choose(kind, name, valid):
            i = len(taken)
            if i < len(prefix):
                assert prefix[i] in valid
                taken.append(prefix[i])
                return prefix[i]
            raise _Branch(valid)
        taken = []
        try:
            space.run(choose)
        except _Branch as branch:
            for choice in branch.args[0]:
                walk(prefix + (choice,))
            return
        out.append(prefix)
    walk(())
    return out


TINY = {"intermediate_blocks": 0, "min_level": 3, "max_level": 4, "channels": [16, 32],
        "expansions": [16, 32], "kernels": [3]}
ONE = {**TINY, "intermediate_blocks": 1, "channels": [16], "expansions": [16]}


@pytest.mark.parametrize("name,overrides", [
    ("mnasfpn", TINY),
    ("mnasfpn", ONE),
    ("no_expand", {**ONE, "channels": [16, 32]}),
    ("conn_search", {**TINY, "max_inputs": 3}),
    ("conn_search", ONE),
    ("nasfpnlite_s", {"intermediate_blocks": 1, "min_level": 3, "max_level": 4,
                      "merges": ["sum"]}),
])
def test_cell_cardinality_counts_the_sequences(name, overrides):
    space = get_space(name, overrides)
    sequences = enumerate_sequences(space)
    assert len(set(sequences)) == len(sequences) == space.cardinality() > 1
    for decisions in sequences[::7]:
        space.decode(decisions)


def _pairs(n):
    """(valid encoder, valid utilization) pairs by brute force over every stride path."""
    out = set()
    for strides in itertools.product(STRIDE_CHOICES, repeat=n):
        try:
            encoder = EncoderSpec(strides, 8)
        except ArchitectureError:
            continue
        out |= {(encoder.strides, u) for u in valid_utilizations(encoder.block_strides())}
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_msnas_cardinality_is_the_valid_pairs(n):
    space = get_space("msnas", {"num_blocks": n, "channels": 8})
    pairs = _pairs(n)
    assert space.cardinality() == len(pairs)
    if not pairs:  # one block: only single-stride encoders, none has a utilization
        with pytest.raises(ValueError, match="no 1-block encoder has a valid"):
            space.run(lambda kind, name, valid: valid[0])
        return
    sequences = enumerate_sequences(space)
    assert len(sequences) == len(pairs)
    decoded = {(s.encoder.strides, s.feature_strides)
               for s in map(space.decode, sequences)}  # each one a validated MSNASSpec
    assert decoded == pairs


def test_msnas_default_cardinality():
    """13 blocks: 3^13 paths minus those leaving 4..64, minus the single-stride encoders,
    each with its utilizations; the DP stays instant at the paper's depth."""
    assert get_space("msnas").cardinality() == 13_003_499
