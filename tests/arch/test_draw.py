"""Cells drawn as SVG (MnasFPN Fig. 2, MSNAS Fig. 1(b)) and `describe ARCH --draw`."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from mnas_tf.arch import architecture_names, load_architecture
from mnas_tf.arch.draw import draw, load_any
from mnas_tf.arch.msnas import load_msnas

NS = "{http://www.w3.org/2000/svg}"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _parse(svg: str):
    root = ET.fromstring(svg)  # well-formed, standalone SVG
    assert root.tag == f"{NS}svg"
    texts = [t.text or "" for t in root.iter(f"{NS}text")]
    return root, texts


@pytest.mark.parametrize("name", architecture_names())
def test_every_shipped_cell_is_drawn_with_its_block_fields(name):
    spec = load_architecture(name)
    root, texts = _parse(draw(spec))
    blocks = [t for t in texts if t.startswith("b") and ": " in t]
    assert len(blocks) == len(spec.blocks)
    for i, block in enumerate(spec.blocks):
        assert f"R=1/{2 ** block.level}" in blocks[i]
        if block.expansion is not None:
            assert f"F={block.expansion}" in blocks[i]
    details = " ".join(texts)
    assert all(f"k={b.kernel}" in details for b in spec.blocks if b.kernel)
    assert all(f"C{lvl}" in texts and f"P{lvl} out" in texts for lvl in spec.levels)
    residuals = [p for p in root.iter(f"{NS}path")
                 if p.get("stroke") == "#c0392b" and p.get("stroke-dasharray")]
    assert len(residuals) == (spec.num_levels if spec.cell_residuals else 0)
    edges = [p for p in root.iter(f"{NS}path") if p.get("stroke") in ("#555", "#bbb")]
    assert len(edges) == sum(len(spec.block_sources(i)) for i in range(len(spec.blocks))) \
        + spec.num_levels


def test_unused_blocks_are_drawn_grey_and_marked():
    spec = load_architecture("mnasfpn")
    data = spec.to_dict()
    data["blocks"].insert(0, {"inputs": [0, 1], "level": 3, "expansion": 64, "kernel": 3})
    for b in data["blocks"][1:]:  # renumber: the extra block is node 4
        b["inputs"] = [n + 1 if n >= 4 else n for n in b["inputs"]]
    _, texts = _parse(draw(load_any(data)))
    assert sum("(unused)" in t for t in texts) == 1


def test_msnas_stride_path_laterals_and_heads():
    spec = load_msnas("msnas_r18_top1")
    root, texts = _parse(draw(spec))
    assert [t for t in texts if t.startswith("head ")] == [
        f"head {g}: s={s}" for g, s in enumerate(spec.feature_strides)]
    assert sum(t in ("/2", "=", "x2") for t in texts) == spec.encoder.num_blocks
    laterals = [p for p in root.iter(f"{NS}path") if p.get("stroke") == "#2e86c1"]
    assert len(laterals) == sum(s is not None for s in spec.encoder.lateral_sources())
    reads = [p for p in root.iter(f"{NS}path") if p.get("stroke") == "#27ae60"]
    assert len(reads) == 5


def test_load_any_tells_the_two_kinds_apart(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(load_msnas("msnas_r34_top2").to_json())
    assert type(load_any(str(path))).__name__ == "MSNASSpec"
    assert type(load_any("nasfpnlite")).__name__ == "MnasFPNSpec"
    assert type(load_any(load_architecture("mnasfpn").to_json())).__name__ == "MnasFPNSpec"


def _describe(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "mnas_tf.describe", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_describe_draw_writes_svg_without_building_a_model(tmp_path):
    out = tmp_path / "cell.svg"
    done = _describe("mnasfpn", "--draw", str(out))
    assert done.returncode == 0, done.stderr
    _parse(out.read_text())
    done = _describe("msnas_r50_top1", "--draw", str(tmp_path / "m.svg"))
    assert done.returncode == 0, done.stderr
    assert "head 4: s=" in (tmp_path / "m.svg").read_text()
    for bad in (["no_such_cell", "--draw", str(tmp_path / "x.svg")],
                ['{"channels": 8}', "--draw", str(tmp_path / "x.svg")],
                ["mnasfpn", "--draw", str(tmp_path)],
                ["--draw", str(tmp_path / "x.svg")]):
        done = _describe(*bad)
        assert done.returncode == 2, bad
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error:")
    assert not (tmp_path / "x.svg").exists()
