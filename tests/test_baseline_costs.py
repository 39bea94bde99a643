"""Cost fidelity of the baselines against the paper (Tables 1 and 3), at 320x320, through
`python -m mnas_tf.describe ... --json` as users run it."""

import json

import pytest

from mnas_tf import describe as describe_mod


def _describe_json(capsys, experiment):
    assert describe_mod.main([experiment, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_ssdlite_matches_the_paper(capsys):
    info = _describe_json(capsys, "ssdlite_mobilenetv2")
    assert info["input_size"] == [320, 320]
    assert info["madds"] == pytest.approx(0.80e9, rel=0.05)
    assert info["params"] == pytest.approx(4.3e6, rel=0.08)
    assert [s[:2] for s in info["feature_shapes"].values()] == [
        [20, 20], [10, 10], [5, 5], [3, 3], [2, 2], [1, 1]]
    assert info["num_anchors"] == (400 + 100 + 25 + 9 + 4 + 1) * 5


def test_nasfpnlite_matches_the_paper(capsys):
    info = _describe_json(capsys, "configs/experiments/nasfpnlite_mobilenetv2.yaml")
    assert info["madds"] == pytest.approx(0.98e9, rel=0.10)
    assert info["params"] == pytest.approx(2.02e6, rel=0.10)
    # the paper (Fig. 5): NAS-FPNLite spends less on its head than on its predictor
    assert info["parts"]["head"]["madds"] < info["parts"]["predictor"]["madds"]


def test_mnasfpn_without_sdo_costs_more_madds_same_params():
    with_sdo = describe_mod.describe("mnasfpn_mobilenetv2_coco")
    without = describe_mod.describe("configs/experiments/mnasfpn_nosdo_mobilenetv2.yaml")
    assert without["madds"] > with_sdo["madds"]
    assert without["params"] == with_sdo["params"]
    # paper Table 3, No SDO with 4 repeats: 0.94B MAdds, 2.5M params
    assert without["madds"] == pytest.approx(0.94e9, rel=0.05)
