"""Cost figures of the published detectors and the describe command's interface."""

import json

import pytest

from mnas_tf import describe as describe_mod


@pytest.fixture(scope="module")
def published():
    return describe_mod.describe("mnasfpn_mobilenetv2_coco")


def test_published_mnasfpn_matches_paper_cost(published):
    assert published["madds"] == pytest.approx(0.92e9, rel=0.03)
    assert published["params"] == pytest.approx(2.50e6, rel=0.03)
    assert published["num_anchors"] == 19125
    parts = published["parts"]
    # the reference recount (reference §4): 570M / 192M / 156M MAdds; 1.81M / 0.57M / 0.08M
    assert parts["backbone"]["madds"] == pytest.approx(570e6, rel=0.01)
    assert parts["head"]["madds"] == pytest.approx(192e6, rel=0.01)
    assert parts["predictor"]["madds"] == pytest.approx(156e6, rel=0.01)
    assert parts["backbone"]["params"] == pytest.approx(1.81e6, rel=0.01)
    assert parts["head"]["params"] == pytest.approx(0.57e6, rel=0.01)
    assert published["feature_shapes"]["3"] == [40, 40, 48]


def test_dm07_variant_matches_paper_cost():
    info = describe_mod.describe("configs/experiments/mnasfpn_mobilenetv2_dm0.7_coco.yaml")
    assert info["madds"] == pytest.approx(0.53e9, rel=0.08)
    assert info["params"] == pytest.approx(1.29e6, rel=0.08)
    assert info["feature_shapes"]["6"] == [5, 5, 32]


def test_json_output_and_input_size(capsys):
    assert describe_mod.main(["--input-size", "320", "256", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"madds", "params", "num_anchors", "parts"} <= set(info)
    assert info["feature_shapes"]["6"] == [5, 4, 48]
    assert info["num_anchors"] == (40 * 32 + 20 * 16 + 10 * 8 + 5 * 4) * 9


@pytest.mark.parametrize("argv, needle", [
    (["no_such_experiment"], "unknown experiment 'no_such_experiment'; registered"),
    (["missing.yaml"], "config file missing.yaml does not exist"),
    (["--input-size", "300", "300"], "must be a multiple of 64"),
    (["--params-override", "task: {model: {decodr: {}}}"],
     "unknown config key 'task.model.decodr'; valid keys here:"),
    (["--params-override", "task: {model: {decoder: {mnasfpn: {architecture: nope}}}}"],
     "unknown architecture 'nope'"),
])
def test_bad_input_exits_2_with_one_clear_line(argv, needle, capsys):
    assert describe_mod.main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
