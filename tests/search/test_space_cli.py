"""`python -m search.space`: the size of each space beside Table 2, and --encode."""

import json
import subprocess
import sys

import pytest

from search.space import main


@pytest.mark.parametrize("name", ["mnasfpn", "no_expand", "conn_search", "nasfpnlite_s"])
def test_json_reports_the_size_and_shape(name, capsys):
    assert main([name, "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["space"] == name and info["intermediate_blocks"] == 5
    assert info["output_blocks"] == 4 and info["decisions"] >= info["decisions_min"] > 30
    assert info["cardinality"] > 1e17 and info["paper_cardinality"] > 0
    if name == "mnasfpn":
        assert abs(info["log10_ratio_to_paper"]) <= 0.5
        assert info["decisions"] == 51


def test_encode_prints_the_sequence_and_refuses_specs_outside(capsys):
    assert main(["mnasfpn", "--encode", "configs/architectures/mnasfpn.json"]) == 0
    decisions = json.loads(capsys.readouterr().out)
    assert len(decisions) == 51
    done = subprocess.run([sys.executable, "-m", "search.space", "mnasfpn", "--encode",
                           "configs/architectures/mnasfpn_dm0.7.json"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not in space 'mnasfpn'" in lines[0] and "176" in lines[0]


def test_msnas_reports_its_size_and_encodes_a_paper_architecture(capsys):
    assert main(["msnas", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "msnas" and info["cardinality"] == 13_003_499
    assert info["num_blocks"] == 13 and info["channels"] == 180 and info["decisions"] == 18
    assert main(["msnas", "--space-overrides", '{"num_blocks": 4, "channels": 8}']) == 0
    assert "cardinality 330" in capsys.readouterr().out
    assert main(["msnas", "--encode", "configs/architectures/msnas/msnas_r18_top1.json"]) == 0
    decisions = json.loads(capsys.readouterr().out)
    assert len(decisions) == 18 and decisions[-5:] == [1, 1, 2, 2, 3]  # 8, 8, 16, 16, 32


@pytest.mark.parametrize("argv,message", [
    (["fpn"], "unknown search space 'fpn'"),
    (["mnasfpn", "--space-overrides", "{nope"], "not valid JSON"),
    (["mnasfpn", "--space-overrides", '{"channels": 16}'], "channels must be a list"),
    (["mnasfpn", "--encode", "missing.json"], "does not exist"),
    (["msnas", "--space-overrides", '{"num_blocks": 0}'], "num_blocks must be a positive"),
    (["msnas", "--space-overrides", '{"channels": 64}', "--encode",
      "configs/architectures/msnas/msnas_r18_top1.json"], "is not in space 'msnas'"),
    (["msnas", "--encode", "configs/architectures/mnasfpn.json"], "unknown field(s) 'blocks'"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
