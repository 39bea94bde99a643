"""Search spaces: every decision sequence decodes to a valid spec, the codecs are inverse,
the cardinality formula counts exactly what the decoder can produce."""

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnas_tf.arch import MnasFPNSpec, load_architecture
from search.space import (SPACES, CellSpace, DecisionError, canonical_dict, get_space,
                          surjections)
from search.store import arch_hash


def _draw_sequence(space, data):
    decisions = []
    space.run(lambda kind, name, valid: decisions.append(
        data.draw(st.sampled_from(valid), label=name)) or decisions[-1])
    return decisions


@pytest.mark.parametrize("name", sorted(SPACES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_sequence_decodes_to_a_valid_spec_and_back(name, data):
    space = get_space(name)
    decisions = _draw_sequence(space, data)
    spec = space.decode(decisions)
    MnasFPNSpec.from_json(spec.to_json())  # validates again from its JSON
    assert len(decisions) <= space.max_length
    assert set(spec.levels) == {b.level for b in spec.blocks}
    assert space.encode(spec) == decisions


@pytest.mark.parametrize("name", sorted(SPACES))
def test_sampled_specs_build_as_keras_decoders(name):
    import tensorflow as tf

    from mnas_tf.modeling.mnasfpn import MnasFPN
    space = get_space(name, repeats=2)
    spec = space.decode(space.sample_decisions(np.random.default_rng(4)))
    shapes = {"3": [1, 16, 16, 32], "4": [1, 8, 8, 96], "5": [1, 4, 4, 320]}  # 128x128
    outputs = MnasFPN(shapes, spec)({k: tf.zeros(v) for k, v in shapes.items()})
    assert sorted(outputs) == [str(l) for l in spec.levels]
    assert outputs["6"].shape == (1, 2, 2, spec.channels)


def _enumerate(space):
    """All decision sequences by depth-first search over the decoder's own choices."""
    sequences = []

    def extend(prefix):
        state = {"i": 0, "branch": None}

        def choose(kind, name, valid):
            i = state["i"]
            state["i"] += 1
            if i < len(prefix):
                return prefix[i]
            state["branch"] = valid
            raise StopIteration
        try:
            space.run(choose)
            sequences.append(tuple(prefix))
        except StopIteration:
            for v in state["branch"]:
                extend(prefix + [v])
    extend([])
    return sequences


@pytest.mark.parametrize("overrides", [
    {"name": "mnasfpn", "channels": (8,), "expansions": (8, 16), "kernels": (3,),
     "num_blocks": 3, "min_level": 3, "max_level": 4},
    {"name": "conn_search", "family": "conn_search", "merges": ("sum",), "max_inputs": 4,
     "channels": (8,), "expansions": (8,), "kernels": (3, 5), "num_blocks": 3,
     "min_level": 3, "max_level": 4},  # block 2 reads 4 nodes: in-degrees 2, 3 and 4
])
def test_cardinality_formula_counts_every_distinct_cell(overrides):
    space = CellSpace(**overrides)
    sequences = _enumerate(space)
    assert len(sequences) == space.cardinality()
    cells = {arch_hash(canonical_dict(space.decode(s))) for s in sequences}
    assert len(cells) == len(sequences)  # one sequence per distinct cell


def test_cardinality_of_the_paper_spaces():
    assert surjections(5, 4) == 240
    sizes = {name: get_space(name).cardinality() for name in SPACES}
    assert sizes["nasfpnlite_s"] < sizes["no_expand"] < sizes["mnasfpn"] < sizes["conn_search"]
    assert sizes["mnasfpn"] == 6 * 240 * 21 ** 5 * (3 * 6 * 3 * 10 * 3 * 15 * 3 * 21 * 3 * 28)


def test_published_cell_is_in_the_space_and_hash_ignores_sum_order():
    space = get_space("mnasfpn")
    published = load_architecture("mnasfpn")
    assert canonical_dict(space.decode(space.encode(published))) == canonical_dict(published)
    flipped = published.replace(blocks=tuple(
        b if b.merge != "sum" else type(b)(**{**b.__dict__, "inputs": b.inputs[::-1]})
        for b in published.blocks))
    assert arch_hash(canonical_dict(flipped)) == arch_hash(canonical_dict(published))


def test_bad_sequences_and_settings_are_refused():
    space = get_space("mnasfpn")
    good = space.sample_decisions(np.random.default_rng(0))
    with pytest.raises(DecisionError, match="needs more decisions"):
        space.decode(good[:-1])
    with pytest.raises(DecisionError, match="decisions given"):
        space.decode(good + [0])
    with pytest.raises(DecisionError, match=r"decision 0 \(channels\) is 99"):
        space.decode([99] + good[1:])
    with pytest.raises(ValueError, match="unknown search space 'nope'; valid spaces are"):
        get_space("nope")
    with pytest.raises(ValueError, match="cannot give each"):
        get_space("mnasfpn", num_blocks=3)
