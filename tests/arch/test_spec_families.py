"""Cell families in one spec: defaults, the search spaces' JSON shapes, NAS-FPN recycling,
and the errors of invalid family/field combinations."""

import json

import pytest

from mnas_tf.arch import (FAMILIES, ArchitectureError, BlockSpec, CellSpec, MnasFPNSpec,
                          architecture_names, load_architecture)

NASFPN_EXAMPLE = {"family": "nasfpn", "channels": 64, "repeats": 3, "min_level": 3,
                  "max_level": 6, "blocks": [
                      {"inputs": [0, 2], "level": 4, "merge": "attention"},
                      {"inputs": [0, 4], "level": 3, "merge": "sum"},
                      {"inputs": [4, 5], "level": 4, "merge": "sum"},
                      {"inputs": [6, 2], "level": 5, "merge": "attention"},
                      {"inputs": [7, 3], "level": 6, "merge": "sum"}]}
CONN_EXAMPLE = {"family": "conn_search", "channels": 48, "blocks": [
    {"inputs": [0, 1, 3], "level": 4, "expansion": 128, "merge": "sum", "kernel": 5},
    {"inputs": [0, 4, 1, 2], "level": 3, "expansion": 64, "merge": "sum", "kernel": 3},
    {"inputs": [5, 4], "level": 5, "expansion": 64, "merge": "sum", "kernel": 3},
    {"inputs": [4, 3, 6], "level": 6, "expansion": 32, "merge": "sum", "kernel": 7}]}

# Model Garden's NASFPN_BLOCK_SPECS / reference §3.3: (level, merge, inputs).
PUBLISHED_NASFPN = [(4, "attention", (1, 3)), (4, "sum", (1, 5)), (3, "sum", (0, 6)),
                    (4, "sum", (6, 7)), (5, "attention", (7, 8)), (7, "attention", (6, 9)),
                    (6, "attention", (9, 10))]


def test_old_json_loads_as_mnasfpn_with_sdo_and_its_json_is_unchanged():
    published = load_architecture("mnasfpn")
    assert (published.family, published.sdo, published.separable) == ("mnasfpn", True, True)
    assert set(json.loads(published.to_json())) == {"name", "channels", "repeats", "min_level",
                                                     "max_level", "blocks"}
    old = {"channels": 16, "blocks": [{"inputs": [0, 1], "level": l, "expansion": 32}
                                      for l in (3, 4, 5, 6)]}
    spec = MnasFPNSpec.from_dict(old)
    assert spec.family == "mnasfpn" and spec.sdo and all(b.kernel == 3 for b in spec.blocks)
    assert CellSpec is MnasFPNSpec


@pytest.mark.parametrize("data", [NASFPN_EXAMPLE, CONN_EXAMPLE])
def test_search_space_shapes_load_and_round_trip(data):
    spec = MnasFPNSpec.from_dict(data)
    assert spec.family == data["family"]
    assert MnasFPNSpec.from_json(spec.to_json()) == spec
    assert MnasFPNSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_nasfpn_blocks_have_no_expansion_or_kernel_and_no_sdo():
    spec = MnasFPNSpec.from_dict(NASFPN_EXAMPLE)
    assert all(b.expansion is None and b.kernel is None for b in spec.blocks)
    assert spec.sdo is False and not spec.cell_residuals
    assert "expansion" not in spec.to_dict()["blocks"][0]
    explicit_3 = json.loads(json.dumps(NASFPN_EXAMPLE))
    explicit_3["blocks"][0]["kernel"] = 3
    assert MnasFPNSpec.from_dict(explicit_3) == spec


def test_published_nasfpn_cell_matches_model_garden():
    spec = load_architecture("nasfpn")
    assert [(b.level, b.merge, b.inputs) for b in spec.blocks] == PUBLISHED_NASFPN
    assert (spec.min_level, spec.max_level, spec.separable) == (3, 7, False)
    # Model Garden's outputs are the last 5 nodes, one per level
    assert spec.output_nodes() == {3: 7, 4: 8, 5: 9, 7: 10, 6: 11}
    # unread same-level nodes go into output blocks: P5 into block 4, P7 into block 5
    assert spec.recycled_inputs() == ((), (), (), (), (2,), (4,), ())
    assert spec.block_sources(4) == (7, 8, 2)
    assert spec.used_blocks() == tuple(range(7))


def test_recycled_nodes_keep_otherwise_dead_blocks_alive():
    # block 0 (level 4) is read by nobody, but block 2 is the level-4 output and recycles it
    spec = MnasFPNSpec.from_dict({**NASFPN_EXAMPLE, "blocks": [
        {"inputs": [0, 1], "level": 4}, {"inputs": [0, 1], "level": 3},
        {"inputs": [5, 2], "level": 4}, {"inputs": [6, 2], "level": 5},
        {"inputs": [7, 3], "level": 6}]})
    assert 4 in spec.block_sources(2)
    assert spec.used_blocks() == (0, 1, 2, 3, 4)
    same = MnasFPNSpec.from_dict({**NASFPN_EXAMPLE, "family": "mnasfpn", "blocks": [
        dict(b, expansion=8) for b in spec.to_dict()["blocks"]]})
    assert same.recycled_inputs() == ((),) * 5 and same.used_blocks() == (1, 2, 3, 4)


def test_every_family_ships_a_named_spec():
    families = {load_architecture(n).family for n in architecture_names()}
    assert families == set(FAMILIES)
    assert load_architecture("mnasfpn_nosdo").sdo is False
    assert all(b.expansion == 48 for b in load_architecture("mnasfpn_noexpand").blocks)


def _published(**changes):
    return {**load_architecture("mnasfpn").to_dict(), **changes}


def _nasfpn_block(index, **changes):
    data = json.loads(json.dumps(NASFPN_EXAMPLE))
    data["blocks"][index].update(changes)
    return data


def _conn_block(index, **changes):
    data = json.loads(json.dumps(CONN_EXAMPLE))
    data["blocks"][index].update(changes)
    return data


@pytest.mark.parametrize("data, needle", [
    (_published(family="bifpn"), "field 'family': 'bifpn' is not a cell family"),
    (_published(sdo="no"), "field 'sdo': expected true or false"),
    (_published(separable=False), "field 'separable': family 'mnasfpn' always uses separable"),
    (_published(family="no_expand"),
     "block 0, field 'expansion': family 'no_expand' needs expansion == channels (48)"),
    (_conn_block(0, merge="se"), "block 0, field 'merge': 'se' merges exactly 2 inputs"),
    (_conn_block(2, merge="se"), "block 2, field 'merge': family 'conn_search' merges by "
                                 "addition only"),
    (_conn_block(1, inputs=[0, 4, 1, 2, 3]), "block 1, field 'inputs': needs 2..4"),
    ({**CONN_EXAMPLE, "family": "mnasfpn"},
     "block 0, field 'inputs': family 'mnasfpn' merges exactly 2 inputs"),
    (_nasfpn_block(1, kernel=5), "block 1, field 'kernel': family 'nasfpn' uses a fixed 3x3"),
    (_nasfpn_block(1, expansion=64), "block 1, field 'expansion': family 'nasfpn' has no "
                                     "expansion"),
    (_nasfpn_block(0, merge="se"), "block 0, field 'merge': 'se' is not allowed in family "
                                   "'nasfpn'"),
    (_nasfpn_block(0, inputs=[0, 1, 2]), "block 0, field 'inputs': family 'nasfpn' merges "
                                         "exactly 2"),
    (_published(blocks=[dict(b, merge="attention") for b in _published()["blocks"]]),
     "block 0, field 'merge': 'attention' is not allowed; choose one of ('sum', 'se')"),
    (_published(blocks=[{k: v for k, v in b.items() if k != "expansion"}
                         for b in _published()["blocks"]]),
     "block 0, field 'expansion': must be a positive integer, got None"),
])
def test_invalid_family_combinations_name_block_and_field(data, needle):
    with pytest.raises(ArchitectureError) as err:
        MnasFPNSpec.from_dict(data)
    assert needle in str(err.value)


def test_blockspec_positional_construction_still_works():
    spec = MnasFPNSpec(tuple(BlockSpec((0, 1), level, 32) for level in (3, 4, 5, 6)),
                       channels=16)
    assert spec.blocks[0] == BlockSpec((0, 1), 3, 32, "sum", 3)
