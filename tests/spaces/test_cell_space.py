"""MnasFPN-family spaces: 5 intermediate + one output block per level, every decision
sequence decodes to a valid (pruned) spec, the codecs are inverse, the cardinality
formula counts exactly what the decoder can produce, and the hash ignores pruned blocks."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnas_tf.arch import BlockSpec, MnasFPNSpec, load_architecture
from mnas_tf.spaces import (PAPER_CARDINALITY, SPACES, CellSpace, DecisionError,
                            canonical_dict, get_space)
from search.store import arch_hash


def _draw_sequence(space, data):
    decisions = []
    space.run(lambda kind, name, valid: decisions.append(
        data.draw(st.sampled_from(valid), label=name)) or decisions[-1])
    return decisions


@pytest.mark.parametrize("name", sorted(SPACES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_sequence_decodes_to_a_valid_pruned_spec_and_back(name, data):
    space = get_space(name)
    decisions = _draw_sequence(space, data)
    spec = space.decode(decisions)
    MnasFPNSpec.from_json(spec.to_json())  # validates again from its JSON
    assert len(decisions) <= space.max_length
    levels = list(space.levels)
    assert [b.level for b in spec.blocks[-len(levels):]] == levels  # outputs, level order
    assert len(spec.used_blocks()) == len(spec.blocks)  # nothing unreached is left
    assert len(spec.blocks) <= space.num_blocks
    again = space.encode(spec)
    assert canonical_dict(space.decode(again)) == canonical_dict(spec)
    if len(spec.blocks) == space.num_blocks:  # nothing was pruned: the same sequence
        assert again == decisions


@pytest.mark.parametrize("name", sorted(SPACES))
def test_sampled_specs_build_as_keras_decoders(name):
    import tensorflow as tf

    from mnas_tf.modeling.mnasfpn import MnasFPN
    space = get_space(name, repeats=2)
    spec = space.sample(np.random.default_rng(4))
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


REDUCED = {  # small enough to enumerate, with every kind of decision of the family
    "mnasfpn": dict(channels=(8,), expansions=(8,), kernels=(3,), intermediate_blocks=2,
                    min_level=3, max_level=4),
    "conn_search": dict(channels=(8,), expansions=(8,), kernels=(3, 5),
                        intermediate_blocks=1, min_level=3, max_level=4),  # in-degree 2..4
    "no_expand": dict(channels=(8, 16), kernels=(3,), merges=("sum",), intermediate_blocks=2,
                      min_level=3, max_level=4),
    "nasfpnlite_s": dict(channels=(8,), intermediate_blocks=2, min_level=3, max_level=4),
}


@pytest.mark.parametrize("name", sorted(REDUCED))
def test_cardinality_formula_counts_every_sequence(name):
    space = get_space(name, **REDUCED[name])
    sequences = _enumerate(space)
    assert len(sequences) == space.cardinality()
    assert len(set(sequences)) == len(sequences)
    specs = [space.decode(s) for s in sequences]
    detectors = {arch_hash(canonical_dict(spec)) for spec in specs}
    if space.family == "nasfpn":  # recycling reaches every block: nothing is ever pruned
        assert all(len(s.blocks) == space.num_blocks for s in specs)
        assert len(detectors) == len(sequences)
    else:  # sequences that differ only in unreached blocks build one detector
        assert len(detectors) < len(sequences)
        full = [s for s in specs if len(s.blocks) == space.num_blocks]
        assert len({arch_hash(canonical_dict(s)) for s in full}) == len(full)
    if name == "conn_search":
        assert {len(b.inputs) for s in specs for b in s.blocks} == {2, 3, 4}


def test_cardinality_of_the_paper_spaces():
    sizes = {name: get_space(name).cardinality() for name in SPACES}
    pairs = math.prod(math.comb(n, 2) for n in range(4, 13))  # nodes 4..12 of 9 blocks
    assert sizes["mnasfpn"] == 6 * pairs * 4 ** 5 * (7 * 2 * 3) ** 9
    assert abs(math.log10(sizes["mnasfpn"] / PAPER_CARDINALITY["mnasfpn"])) <= 0.5
    # the paper's No-Expand / NAS-FPNLite-S ratio, 1.2e5, is exactly 6 x 3^9
    assert sizes["no_expand"] == sizes["nasfpnlite_s"] * 6 * 3 ** 9
    assert sizes["nasfpnlite_s"] < sizes["no_expand"] < sizes["mnasfpn"] < sizes["conn_search"]
    assert get_space("mnasfpn").cardinality(ordered_inputs=True) == sizes["mnasfpn"] * 2 ** 9


@pytest.mark.parametrize("arch,space", [("mnasfpn", "mnasfpn"),
                                        ("mnasfpn_noexpand", "no_expand"),
                                        ("conn_search", "conn_search")])
def test_shipped_cells_encode_and_decode_back(arch, space):
    space, spec = get_space(space), load_architecture(arch)
    decisions = space.encode(spec)
    assert len(decisions) <= space.max_length
    decoded = space.decode(decisions)
    assert canonical_dict(decoded) == canonical_dict(spec)
    assert len(decoded.blocks) == len(spec.blocks)  # the 4 filler blocks are pruned again


def _fig3_cell(merge="sum"):
    """A NAS-FPNLite-S cell like the paper's Fig. 3: all 5 intermediate blocks at 20x20."""
    blocks = [BlockSpec(inputs=(1, 2), level=4, merge=merge)]
    blocks += [BlockSpec(inputs=(i - 1, i), level=4, merge="sum") for i in range(4, 8)]
    blocks += [BlockSpec(inputs=(0, 8), level=3), BlockSpec(inputs=(8, 9), level=4),
               BlockSpec(inputs=(2, 8), level=5, merge="attention"),
               BlockSpec(inputs=(3, 11), level=6)]
    return MnasFPNSpec(blocks=tuple(blocks), channels=64, repeats=3, family="nasfpn")


def test_nasfpnlite_s_cell_puts_all_five_blocks_at_one_level():
    space, spec = get_space("nasfpnlite_s", repeats=3), _fig3_cell("attention")
    decoded = space.decode(space.encode(spec))
    assert canonical_dict(decoded) == canonical_dict(spec)
    with pytest.raises(DecisionError, match="differs in repeats"):
        get_space("nasfpnlite_s").encode(spec)
    assert [b.level for b in decoded.blocks[:5]] == [4] * 5
    # NAS-FPN never prunes: every block is built
    assert len(decoded.used_blocks()) == 9


def test_mnasfpn_space_can_place_all_intermediate_blocks_at_one_level():
    space = get_space("mnasfpn")
    blocks = [BlockSpec(inputs=(1, 2), level=5, expansion=64)]
    blocks += [BlockSpec(inputs=(n - 2, n - 1), level=5, expansion=64) for n in range(5, 9)]
    blocks += [BlockSpec(inputs=(0, 8), level=3, expansion=32),
               BlockSpec(inputs=(1, 8), level=4, expansion=32),
               BlockSpec(inputs=(8, 2), level=5, expansion=32),
               BlockSpec(inputs=(3, 11), level=6, expansion=32)]
    spec = MnasFPNSpec(blocks=tuple(blocks), channels=48)
    decisions = space.encode(spec)
    assert space.decode(decisions).to_dict() == canonical_dict(spec) | {"name": "mnasfpn_sample"}


def test_specs_outside_the_space_are_named():
    space = get_space("mnasfpn")
    with pytest.raises(DecisionError, match="expansion = 176 is not a choice"):
        space.encode(load_architecture("mnasfpn_dm0.7"))
    with pytest.raises(DecisionError, match="family 'nasfpn'"):
        space.encode(load_architecture("nasfpnlite"))
    with pytest.raises(DecisionError, match="must be the cell outputs at levels 3..6"):
        get_space("nasfpnlite_s").encode(load_architecture("nasfpnlite"))
    with pytest.raises(DecisionError, match="allows 2 intermediate blocks, the spec has 5"):
        get_space("nasfpnlite_s", intermediate_blocks=2).encode(_fig3_cell())
    with pytest.raises(DecisionError, match="exactly 5 intermediate blocks"):
        get_space("nasfpnlite_s").encode(load_architecture("mnasfpn").replace(
            family="nasfpn", channels=64, blocks=tuple(
                BlockSpec(inputs=b.inputs, level=b.level)
                for b in load_architecture("mnasfpn").blocks)))
    with pytest.raises(DecisionError, match="sdo"):
        space.encode(load_architecture("mnasfpn_nosdo"))


def test_hash_ignores_pruned_blocks_and_sum_order():
    space = get_space("mnasfpn")
    published = load_architecture("mnasfpn")
    decisions = space.encode(published)
    variant = list(decisions)
    # the filler block mid1 is unreached: change its expansion and kernel
    steps = space.decode_steps(decisions)[1]
    for i, step in enumerate(steps):
        if step.name in ("mid1.expansion", "mid1.kernel", "mid3.level"):
            variant[i] = step.valid[-1]
    assert variant != decisions
    assert arch_hash(canonical_dict(space.decode(variant))) == \
        arch_hash(canonical_dict(published))
    flipped = published.replace(blocks=tuple(
        b if b.merge != "sum" else BlockSpec(**{**b.__dict__, "inputs": b.inputs[::-1]})
        for b in published.blocks))
    assert arch_hash(canonical_dict(flipped)) == arch_hash(canonical_dict(published))
    it = iter(decisions)
    unpruned = space.run(lambda kind, name, valid: next(it))
    assert len(unpruned.blocks) == 9 and unpruned.pruned().to_dict() == \
        space.decode(decisions).to_dict()


def test_pruned_blocks_cost_nothing():
    """Unreached blocks are not built: the pruned spec has the unpruned one's MAdds."""
    from mnas_tf.cost import count_madds
    from mnas_tf.modeling.mnasfpn import MnasFPN
    space = get_space("mnasfpn", repeats=1)
    rng = np.random.default_rng(3)
    it = iter(space.sample_decisions(rng))
    full = space.run(lambda kind, name, valid: next(it))
    assert len(full.used_blocks()) < len(full.blocks)
    shapes = {"3": [1, 16, 16, 32], "4": [1, 8, 8, 96], "5": [1, 4, 4, 320]}
    madds = [count_madds(MnasFPN(shapes, s), shapes) for s in (full, full.pruned())]
    assert madds[0] == madds[1] > 0


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
    with pytest.raises(ValueError, match="unknown setting.*num_blocks; valid settings"):
        get_space("mnasfpn", num_blocks=3)
    with pytest.raises(ValueError, match="channels must be a non-empty list, got 16"):
        get_space("mnasfpn", channels=16)
    with pytest.raises(ValueError, match="intermediate_blocks must be an integer"):
        get_space("mnasfpn", intermediate_blocks="5")
    assert isinstance(CellSpace(channels=[16, 32]).channels, tuple)
