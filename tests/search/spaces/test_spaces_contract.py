"""Every registered space keeps the SearchSpace contract: round trips, valid decodes,
valid variation children, a toy optimum of exactly 1.0 at its target."""

import json

import numpy as np
import pytest

from mnas_tf.arch import ArchitectureError
from mnas_tf.spaces import get_space as cell_space
from search.spaces import (SPACE_NAMES, CellSearchSpace, DecisionError, MSNASSpace,
                           SearchSpace, describe, get_space)

# the contract holds for any size; smaller cells keep the suite fast
SMALL = {"mnasfpn": {"intermediate_blocks": 2}, "no_expand": {"intermediate_blocks": 2},
         "conn_search": {"intermediate_blocks": 2}, "nasfpnlite_s": {"intermediate_blocks": 2},
         "msnas": {}}


@pytest.fixture(params=SPACE_NAMES)
def space(request):
    return get_space(request.param, SMALL[request.param])


def _in_space(space, spec):
    """A fully valid spec of the space: its key round-trips and it encodes."""
    key = space.key(spec)
    assert space.key(space.spec(json.loads(json.dumps(key)))) == key
    assert space.key(space.decode(space.encode(spec))) == key
    return key


def test_registry_covers_every_family():
    assert set(SPACE_NAMES) == {"mnasfpn", "no_expand", "conn_search", "nasfpnlite_s", "msnas"}
    assert all(isinstance(get_space(name), SearchSpace) for name in SPACE_NAMES)
    assert get_space("msnas") == MSNASSpace(13, 180) and get_space("msnas").cell_space is None
    cell = get_space("mnasfpn", {"intermediate_blocks": 3})
    assert isinstance(cell, CellSearchSpace) and cell.cell_space == cell_space(
        "mnasfpn", intermediate_blocks=3)
    assert cell.max_length == cell.cell_space.max_length  # the rest is the CellSpace's


def test_points_round_trip(space):
    rng = np.random.default_rng(0)
    for _ in range(20):
        spec = space.sample(rng)
        _in_space(space, spec)
        assert len(space.arch_hash(spec)) == 16
        decisions = space.sample_decisions(rng)
        decoded, steps = space.decode_steps(decisions)
        assert [s.choice for s in steps] == decisions
        assert {s.name for s in steps} <= set(space.decision_names())
        assert all(s.choice in s.valid and set(s.valid) <= set(range(len(space.kinds[s.kind])))
                   for s in steps)
        key = _in_space(space, decoded)
        assert space.key(space.decode(space.encode(decoded))) == key


def test_variations_make_valid_children(space):
    rng = np.random.default_rng(1)
    made = {}
    operators = [(v.name, v.arity, v.apply) for v in space.variations()]
    operators += [("generic_mutate", 1, lambda p, r, prob=None: space.mutate(p[0], r, prob)),
                  ("generic_crossover", 2, lambda p, r, prob=None: space.crossover(*p, r))]
    assert all(arity in (1, 2) for _, arity, _ in operators)
    for _ in range(30):  # the paper's operators fail often (an invalid child is None)
        parents = [space.sample(rng), space.sample(rng)]
        for name, arity, apply in operators:
            child = apply(parents[:arity], rng, None)
            if child is None:
                continue
            made[name] = made.get(name, 0) + 1
            key = _in_space(space, child)
            if "mutate" in name:
                assert key != space.key(parents[0])
    assert all(made.get(name, 0) >= 5 for name, _, _ in operators), made


class _Bits(SearchSpace):
    """n binary decisions, the second one only offered when the first is 1."""

    name = "bits"

    def __init__(self, choices):
        self.choices = choices

    kinds = property(lambda self: {"bit": tuple(range(self.choices))})
    decision_names = lambda self: ["a", "b"]
    key = lambda self, spec: {"bits": list(spec)}
    spec = lambda self, arch: tuple(arch["bits"])
    encode = lambda self, spec: list(spec)
    cardinality = lambda self: self.choices * self.choices
    describe = lambda self: {}

    def run(self, choose):
        bits = (choose("bit", "a", tuple(range(self.choices))),)
        if bits[0] == 1:
            bits += (choose("bit", "b", tuple(range(self.choices))),)
        return bits


def test_generic_operators_on_a_minimal_space():
    rng = np.random.default_rng(0)
    assert _Bits(1).mutate((0,), rng) is None  # nothing has a second choice
    assert _Bits(1).crossover((0,), (0,), rng) == (0,)
    space = _Bits(2)
    assert space.mutate((0,), rng, prob=0.0) in ((1, 0), (1, 1))  # b is drawn afresh
    assert all(space.mutate((1, 1), rng, prob=0.0) in ((0,), (1, 0)) for _ in range(10))
    children = {space.crossover((0,), (1, 1), rng) for _ in range(50)}
    assert children == {(0,), (1, 1)}  # b's second bit is the only valid one after a=1
    assert space.decode([1, 0]) == (1, 0) and space.sample_decisions(rng)[0] in (0, 1)
    with pytest.raises(DecisionError, match="needs more decisions"):
        space.decode([1])
    with pytest.raises(DecisionError, match="2 decisions given, the program uses 1"):
        space.decode([0, 0])


def test_toy_objective_peaks_exactly_at_its_target(space):
    toy = space.toy_objective(seed=3)
    assert toy.optimum == 1.0 and toy.score(toy.target_spec) == 1.0
    assert space.key(space.decode(toy.target)) == space.key(toy.target_spec)
    rng = np.random.default_rng(4)
    target = space.key(toy.target_spec)
    for _ in range(20):
        spec = space.sample(rng)
        score = toy.score(spec)
        assert 0.0 <= score <= 1.0
        assert (score == 1.0) == (space.key(spec) == target)


def test_describe_is_json_data(space):
    info = json.loads(json.dumps(describe(space)))
    assert info["name"] == space.name and info["cardinality"] == float(space.cardinality())
    assert info["decisions"] >= 1
    assert describe(space.cell_space if space.cell_space is not None else space) == info


@pytest.mark.parametrize("name,overrides,message", [
    ("fpn", None, "unknown search space 'fpn'; valid spaces are mnasfpn"),
    ("msnas", {"depth": 3}, "unknown setting(s) depth for space 'msnas'; valid settings are "
                            "num_blocks, channels"),
    ("msnas", {"num_blocks": "13"}, "space_overrides.num_blocks must be a positive integer"),
    ("msnas", {"channels": 0}, "space_overrides.channels must be a positive integer"),
    ("msnas", {"num_blocks": True}, "must be a positive integer, got True"),
    ("mnasfpn", {"channels": 16}, "space_overrides.channels must be a list"),
    ("mnasfpn", {"depth": 3}, "unknown setting(s) depth"),
    ("mnasfpn", [1], "must be a mapping"),
])
def test_bad_settings_are_one_line(name, overrides, message):
    with pytest.raises(ValueError) as error:
        get_space(name, overrides)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_specs_outside_the_space_are_refused():
    msnas = get_space("msnas", {"num_blocks": 4, "channels": 8})
    other = get_space("msnas", {"num_blocks": 5, "channels": 8}).sample(np.random.default_rng(0))
    with pytest.raises(DecisionError, match="4 blocks, the spec 5"):
        msnas.encode(other)
    with pytest.raises(DecisionError, match="decision 0 .block0.stride. is 0"):
        msnas.decode([0, 1, 1, 1, 0, 0, 0, 0, 0])  # block 0 would upsample below stride 4
    # eq. 7's ranges are the space's (Table 3 drops them): a valid architecture, not a point
    single = msnas.spec({"channels": 8, "strides": [1, 1, 1, 1], "feature_strides": [4] * 5})
    assert not msnas.admits(single)
    with pytest.raises(DecisionError):
        msnas.encode(single)
    with pytest.raises(ArchitectureError):
        msnas.spec({"channels": 8, "strides": [1, 1, 1, 1], "feature_strides": [8] * 5})
