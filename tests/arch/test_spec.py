"""Architecture specs: the shipped ones, JSON round trips, and validation messages."""

import json

import pytest

from mnas_tf.arch import (ArchitectureError, BlockSpec, MnasFPNSpec, architecture_names,
                          load_architecture, scale_depth)

# Reference §1.3, typed in from the table (not loaded from our JSON).
PUBLISHED = MnasFPNSpec(
    blocks=(BlockSpec((1, 2), 4, 256, "sum", 3), BlockSpec((0, 4), 3, 128, "sum", 3),
            BlockSpec((5, 4), 4, 128, "sum", 3), BlockSpec((4, 3), 5, 128, "sum", 5),
            BlockSpec((4, 3), 6, 96, "sum", 3)),
    channels=48, repeats=4, min_level=3, max_level=6, name="mnasfpn")


def test_shipped_published_spec_matches_reference_table():
    assert load_architecture("mnasfpn") == PUBLISHED
    assert {"mnasfpn", "mnasfpn_dm0.7"} <= set(architecture_names())


def test_dm07_variant_is_the_published_cell_scaled():
    dm07 = load_architecture("mnasfpn_dm0.7")
    assert dm07.channels == 32
    assert [b.expansion for b in dm07.blocks] == [176, 88, 88, 88, 64]
    assert dm07 == scale_depth(PUBLISHED, 0.7, name="mnasfpn_dm0.7")


def test_json_round_trip_and_inline_json():
    text = PUBLISHED.to_json()
    assert MnasFPNSpec.from_json(text) == PUBLISHED
    assert load_architecture(text) == PUBLISHED
    assert json.loads(text)["blocks"][3] == {"inputs": [4, 3], "level": 5, "expansion": 128,
                                              "merge": "sum", "kernel": 5}
    with pytest.raises(Exception):
        PUBLISHED.channels = 10  # frozen


def test_published_outputs_are_last_four_nodes_and_every_block_is_used():
    assert PUBLISHED.output_nodes() == {3: 5, 4: 6, 5: 7, 6: 8}
    assert PUBLISHED.used_blocks() == (0, 1, 2, 3, 4)


def test_block_superseded_at_its_level_and_unread_is_not_used():
    blocks = (BlockSpec((0, 1), 4, 64),  # node 4: a level-4 block nobody reads
              BlockSpec((0, 1), 3, 64), BlockSpec((0, 1), 4, 64),
              BlockSpec((1, 2), 5, 64), BlockSpec((2, 3), 6, 64))
    spec = MnasFPNSpec(blocks, channels=16)
    assert spec.output_nodes() == {3: 5, 4: 6, 5: 7, 6: 8}
    assert spec.used_blocks() == (1, 2, 3, 4)


def _with_block(index, **changes):
    data = PUBLISHED.to_dict()
    data["blocks"][index].update(changes)
    return data


@pytest.mark.parametrize("data, needle", [
    (_with_block(1, inputs=[0, 5]), "block 1, field 'inputs': node 5 is not built yet"),
    (_with_block(0, inputs=[-1, 2]), "block 0, field 'inputs': node -1"),
    (_with_block(2, level=7), "block 2, field 'level': 7 is outside the pyramid 3..6"),
    (_with_block(2, level=2), "block 2, field 'level'"),
    (_with_block(3, expansion=0), "block 3, field 'expansion': must be a positive"),
    (_with_block(3, expansion=-8), "block 3, field 'expansion'"),
    (_with_block(4, merge="concat"), "block 4, field 'merge': 'concat' is not allowed"),
    (_with_block(4, kernel=4), "block 4, field 'kernel': 4 is not allowed"),
    (_with_block(1, inputs=[0, 0]), "block 1, field 'inputs': duplicate input nodes"),
    (_with_block(1, inputs=[0]), "block 1, field 'inputs': needs 2..4 input nodes"),
    (_with_block(1, inputs=[0, 1, 2], merge="se"), "block 1, field 'merge': 'se' merges exactly 2"),
    (_with_block(4, level=5), "field 'blocks': no block outputs level(s) [6]"),
    ({**PUBLISHED.to_dict(), "channels": 0}, "field 'channels': must be positive"),
    ({**PUBLISHED.to_dict(), "repeats": -1}, "field 'repeats': must be positive"),
    ({**PUBLISHED.to_dict(), "max_level": 9}, "'min_level'/'max_level'"),
    ({**PUBLISHED.to_dict(), "blocks": []}, "field 'blocks': a cell needs at least one block"),
    ({**PUBLISHED.to_dict(), "chanels": 4}, "unknown field(s) 'chanels'"),
    (_with_block(0, kernal=3), "block 0: unknown field(s) 'kernal'"),
])
def test_invalid_specs_name_block_and_field(data, needle):
    with pytest.raises(ArchitectureError) as err:
        MnasFPNSpec.from_dict(data)
    assert needle in str(err.value)


def test_loader_errors_are_clear(tmp_path):
    with pytest.raises(ArchitectureError, match="unknown architecture 'nope'; shipped ones are"):
        load_architecture("nope")
    with pytest.raises(ArchitectureError, match="does not exist"):
        load_architecture(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ArchitectureError, match="bad.json: architecture JSON is malformed"):
        load_architecture(str(bad))
