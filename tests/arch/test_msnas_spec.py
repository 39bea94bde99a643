"""MSNAS specs: stride-path validity, the eq. 4-6 lateral rule, eq. 7, JSON, named specs."""

import json

import pytest

from mnas_tf.arch import ArchitectureError
from mnas_tf.arch.msnas import (EncoderSpec, MSNASSpec, UtilizationSpec, load_msnas,
                                msnas_names, range_constraint_error, valid_utilizations)

# Paper Table 7, row 1 (MSNAS-R18 top-1), worked by hand:
# block   0  1  2  3  4  5  6    7  8  9    10 11 12
# stride  1  2  2  1  2  1  0.5  1  1  0.5  1  1  0.5
# output  4  8  16 16 32 32 16   16 16 8    8  8  4
# stages  [0] [1] [2 3] [4 5] [6 7 8] [9 10 11] [12]
TABLE7_ROW1 = (1, 2, 2, 1, 2, 1, 0.5, 1, 1, 0.5, 1, 1, 0.5)


def test_table7_row1_strides_stages_and_laterals():
    enc = EncoderSpec(TABLE7_ROW1, 180)
    assert enc.block_strides() == (4, 8, 16, 16, 32, 32, 16, 16, 16, 8, 8, 8, 4)
    assert enc.stage_starts() == (0, 1, 2, 2, 4, 4, 6, 6, 6, 9, 9, 9, 12)
    ends = [i for i, e in enumerate(enc.stage_ends()) if e]
    assert ends == [0, 1, 3, 5, 8, 11, 12]
    # stage ends 8 (stride 16) <- block 3, 11 (stride 8) <- block 1, 12 (stride 4) <- block 0;
    # ends 0, 1, 3, 5 have no earlier stage at their stride
    assert enc.lateral_sources() == (None, None, None, None, None, None, None, None, 3,
                                     None, None, 1, 0)


def test_fpn_like_path_laterals_pair_up_like_fpn():
    # down 4->8->16->32, then up 16->8->4: each up stage end takes the down block at its res
    enc = EncoderSpec((1, 2, 2, 2, 0.5, 0.5, 0.5), 8)
    assert enc.block_strides() == (4, 8, 16, 32, 16, 8, 4)
    assert enc.lateral_sources() == (None, None, None, None, 2, 1, 0)


def test_lateral_takes_nearest_earlier_stage_not_own_stage():
    # 4 | 8 8 | 4 | 8: the last stage (stride 8) reads block 2 (end of stage [1 2]),
    # the stride-4 stage reads block 0; block 2 must not read block 1 (same stage)
    enc = EncoderSpec((1, 2, 1, 0.5, 2), 8)
    assert enc.block_strides() == (4, 8, 8, 4, 8)
    assert enc.lateral_sources() == (None, None, None, 0, 2)


def test_lateral_source_is_always_a_stage_end():
    for name in msnas_names():
        enc = load_msnas(name).encoder
        ends = enc.stage_ends()
        for i, r in enumerate(enc.lateral_sources()):
            if r is not None:
                assert ends[r] and ends[i] and enc.block_strides()[r] == enc.block_strides()[i]
                assert enc.stage_starts()[r] != enc.stage_starts()[i]


@pytest.mark.parametrize("strides, block, stride", [
    ((0.5,), 0, 2),                      # above a quarter of the input
    ((2, 2, 2, 2, 2), 4, 128),           # below 1/64
    ((1, 2, 0.5, 0.5, 1), 3, 2),
])
def test_invalid_paths_name_the_offending_block(strides, block, stride):
    with pytest.raises(ArchitectureError, match=rf"encoder block {block} .*outputs stride "
                                                rf"{stride}:"):
        EncoderSpec(strides, 16)


def test_bad_stride_choice_and_channels():
    with pytest.raises(ArchitectureError, match=r"block 1: stride 3 is not allowed"):
        EncoderSpec((1, 3), 16)
    with pytest.raises(ArchitectureError, match="channels"):
        EncoderSpec((1, 2), 0)


@pytest.mark.parametrize("strides, problem", [
    ((8, 8, 16, 16), "need 5 strides"),
    ((8, 16, 8, 16, 32), "must not decrease"),
    ((4, 8, 12, 16, 32), "stride 12 is not one of"),
])
def test_utilization_constraints(strides, problem):
    with pytest.raises(ArchitectureError, match=problem):
        UtilizationSpec(strides)


@pytest.mark.parametrize("strides, problem", [
    ((16, 16, 32, 32, 64), "finest head stride 16 must be <= 8"),
    ((4, 4, 4, 4, 4), "coarsest head stride 4 must be >= 8"),
    ((8, 8, 8, 8, 8), "all heads use stride 8"),
])
def test_eq7_range_constraints_are_the_space_s_not_the_architecture_s(strides, problem):
    """Table 3 ablates them, so a utilization outside them is still an architecture."""
    assert UtilizationSpec(strides).strides == strides
    assert problem in range_constraint_error(strides)
    assert range_constraint_error((4, 8, 16, 32, 64)) is None


def test_valid_utilizations_enumerate_eq7():
    assert all(max(s) >= 8 and min(s) <= 8 for s in valid_utilizations([4, 8, 16, 32, 64]))
    assert valid_utilizations([4]) == []
    assert (4, 8, 16, 32, 64) in valid_utilizations([4, 8, 16, 32, 64])
    free = valid_utilizations([4, 8, 16, 32, 64], range_constraints=False)
    assert len(free) == 126  # C(5 + 5 - 1, 5) non-decreasing sequences
    assert set(valid_utilizations([4, 8, 16, 32, 64])) < set(free)
    assert valid_utilizations([4], range_constraints=False) == [(4, 4, 4, 4, 4)]


def test_heads_need_a_produced_stride_and_read_the_last_block():
    with pytest.raises(ArchitectureError, match="head 4: no encoder block outputs stride 64"):
        MSNASSpec.build(TABLE7_ROW1, 16, (8, 8, 16, 16, 64))
    spec = MSNASSpec.build(TABLE7_ROW1, 16, (8, 8, 16, 16, 32))
    # stride 8: blocks 1, 9, 10, 11 -> 11; stride 16: blocks 2, 3, 6, 7, 8 -> 8; 32 -> 5
    assert spec.head_blocks() == (11, 11, 8, 8, 5)


def test_json_round_trip_and_unknown_keys():
    spec = MSNASSpec.build(TABLE7_ROW1, 180, (8, 8, 16, 16, 32), name="x")
    assert MSNASSpec.from_json(spec.to_json()) == spec
    assert load_msnas(spec.to_json()) == spec
    with pytest.raises(ArchitectureError, match="unknown field.*'blocks'"):
        MSNASSpec.from_dict({**spec.to_dict(), "blocks": []})
    with pytest.raises(ArchitectureError, match="unknown msnas architecture 'nope'"):
        load_msnas("nope")


PAPER_TABLES = {  # name: (blocks, channels, table row's feature strides)
    "msnas_r18_top1": (13, 180, (8, 8, 16, 16, 32)),
    "msnas_r18_top3": (13, 180, (8, 8, 16, 16, 16)),
    "msnas_r34_top2": (21, 160, (4, 8, 16, 32, 64)),
    "msnas_r50_top3": (21, 144, (8, 8, 32, 32, 64)),
}


def test_named_specs_ship_all_paper_rows():
    names = msnas_names()
    assert len([n for n in names if n.startswith(("msnas_r18", "msnas_r34", "msnas_r50"))]) == 15
    for name, (blocks, channels, feature_strides) in PAPER_TABLES.items():
        spec = load_msnas(name)
        assert (spec.encoder.num_blocks, spec.encoder.channels, spec.feature_strides) == (
            blocks, channels, feature_strides)
    assert load_msnas("msnas_r18_top1").encoder.strides == TABLE7_ROW1
    raw = json.loads(load_msnas("msnas_r18_top1").to_json())
    assert raw["name"] == "msnas_r18_top1"
