"""`python -m search.report`: one self-contained page per search, for both searches, that
reads the store without touching it (also while a search writes to it) and renders in
headless Chromium."""

import html.parser
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MNASFPN = {"space": "mnasfpn", "strategy": "ppo", "evaluator": "toy", "budget": 8,
           "in_flight": 2, "latency": {"source": "none"}, "ppo": {"update_every": 4}}
MSNAS = {"space": "msnas", "space_overrides": {"num_blocks": 6, "channels": 8},
         "constraint": {"type": "madds", "tolerance": 0.1}, "strategy": "evolution",
         "evaluator": "toy", "budget": None, "in_flight": 2, "latency": {"source": "none"},
         "evolution": {"population": 4, "iterations": 1, "max_attempts": 30,
                       "random_children": 1}}


def _env(**extra):
    return dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]),
                **extra)


def _search(root, name, config) -> str:
    path, out = root / f"{name}.yaml", str(root / name)
    path.write_text(json.dumps(config))
    done = subprocess.run([sys.executable, "-m", "search.controller", "--config", str(path),
                           "--out", out, "--quiet"], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _report(*args, **env):
    return subprocess.run([sys.executable, "-m", "search.report", *args], cwd=REPO,
                          env=_env(**env), capture_output=True, text=True, timeout=300)


def _snapshot(*folders) -> dict:
    """Every file under the folders: (size, mtime)."""
    out = {}
    for folder in folders:
        for directory, _, files in os.walk(folder):
            for name in files:
                path = os.path.join(directory, name)
                stat = os.stat(path)
                out[path] = (stat.st_size, stat.st_mtime_ns)
    return out


def _latency_table(root, archs) -> None:
    """This host's table pricing every op of `archs` (what `latency.lut build` leaves)."""
    from latency.host import HostBackend
    from latency.ops import DetectorShape, detector_ops
    from latency.table import LatencyTable
    from mnas_tf.arch import MnasFPNSpec
    shape = DetectorShape()  # mnasfpn_mobilenetv2_coco at 320x320, float32
    table = LatencyTable.for_device({**HostBackend().fingerprint(1), "quant": "float32"},
                                    str(root))
    keys = {str(op) for arch in archs
            for part in detector_ops(MnasFPNSpec.from_dict(arch), shape).values()
            for op in part}
    table.put([(k, 5000.0 if k.startswith("SUBGRAPH") else 40.0, 40.0, 0.0, 10)
               for k in sorted(keys)])
    table.close()


def _add_reference_and_failure(out: str) -> None:
    """What a latency-priced search with a failed child leaves beside its reference trial
    (the published cell, which the search scored itself): latencies, a failure with its
    log."""
    from mnas_tf.arch import load_architecture
    from mnas_tf.spaces import canonical_dict
    db = sqlite3.connect(os.path.join(out, "search.sqlite"))
    assert db.execute("SELECT count(*) FROM trials WHERE role='reference'").fetchone()[0] == 1
    db.execute("UPDATE trials SET latency_ms = 20 + 0.5 * id")
    arch = canonical_dict(load_architecture("mnasfpn"))
    now = time.time()
    cursor = db.execute("INSERT INTO trials (arch, arch_hash, status, seed, error, created) "
                        "VALUES (?, 'bad', 'failed', 2, 'proxy: ValueError: boom', ?)",
                        (json.dumps(arch), now))
    db.commit()
    db.close()
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    with open(os.path.join(out, "logs", f"trial_{cursor.lastrowid}.log"), "w") as f:
        f.write("ValueError: boom\n")


class Page(html.parser.HTMLParser):
    """Counts what the report must hold."""

    def __init__(self, text: str):
        super().__init__()
        self.images, self.svgs, self.rows, self.links, self.external = [], 0, [], [], []
        self._in_body = self._row = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "svg":
            self.svgs += 1
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
            self.rows.append(self._row)
        elif tag == "a":
            self.links.append(attrs["href"])
        elif tag in ("link", "script", "iframe") and ("src" in attrs or "href" in attrs):
            self.external.append(tag)

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False

    def handle_data(self, data):
        if self._row is not None and self._in_body:
            self._row.append(data)


@pytest.fixture(scope="module")
def mnasfpn_search(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_mnasfpn")
    out = _search(root, "search", MNASFPN)
    _add_reference_and_failure(out)
    db = sqlite3.connect(os.path.join(out, "search.sqlite"))
    archs = [json.loads(a) for (a,) in db.execute("SELECT arch FROM trials")]
    db.close()
    _latency_table(root / "latency", archs)
    return out, str(root / "latency")


@pytest.fixture(scope="module")
def mnasfpn_page(mnasfpn_search):
    """The report written while a 'search' holds the store open with a child running (its
    row is only in the WAL); nothing but report.html may change."""
    out, latency_dir = mnasfpn_search
    writer = sqlite3.connect(os.path.join(out, "search.sqlite"), isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("INSERT INTO trials (arch, arch_hash, status, seed, created) VALUES "
                   "('{}', 'live', 'running', 3, 0)")
    try:
        assert os.path.exists(os.path.join(out, "search.sqlite-wal"))
        before = _snapshot(out, latency_dir)
        started = time.time()
        done = _report(out, MNAS_TF_LATENCY_DIR=latency_dir)
        seconds = time.time() - started
        after = _snapshot(out, latency_dir)
        count = writer.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    finally:
        writer.close()
    assert done.returncode == 0, done.stderr[-3000:]
    page = os.path.join(out, "report.html")
    assert done.stdout.strip() == f"report: {page}"
    assert set(after) - set(before) == {page}
    # the store and its WAL are untouched (every reader of a live WAL store marks its read
    # in the -shm shared-memory index; that is SQLite's, not the search's)
    kept = {k: v for k, v in after.items() if k != page and not k.endswith("-shm")}
    assert kept == {k: v for k, v in before.items() if not k.endswith("-shm")}
    return page, count, seconds


def test_mnasfpn_report_holds_every_figure_and_trial(mnasfpn_page):
    path, count, _ = mnasfpn_page
    text = open(path, encoding="utf-8").read()
    page = Page(text)
    assert len(page.images) == 3  # frontier, reward/score/latency, PPO entropy + baseline
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert not page.external  # self-contained
    assert page.svgs == 3 + 1  # the 3 best cells and the latency split
    assert len(page.rows) == count  # every trial, the running one too
    assert any("reference: mnasfpn" in cells for cells in page.rows)
    assert any("running" in cells for cells in page.rows)
    failed = [cells for cells in page.rows if "failed" in cells]
    assert len(failed) == 1 and "proxy: ValueError: boom" in failed[0]
    (log,) = page.links
    assert os.path.isfile(os.path.join(os.path.dirname(path), log))
    assert "predicted latency: backbone / head / predictor" in text
    assert "mnasfpn (trial" in text  # the reference's split beside the best child's
    assert "F=" in text and "R=1/" in text and "k=" in text


def test_msnas_report_elsewhere_leaves_the_search_alone(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_msnas")
    out = _search(root, "search", MSNAS)
    before = _snapshot(out)
    page_path = str(root / "elsewhere" / "r.html")
    done = _report(out, "--html", page_path, MNAS_TF_LATENCY_DIR=str(root / "none"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert _snapshot(out) == before
    text = open(page_path, encoding="utf-8").read()
    page = Page(text)
    assert len(page.images) == 3  # frontier (MAdds), over trials, population best/mean
    assert page.svgs == 3  # the best encoders with their heads; no latency split
    assert "head 4: s=" in text and "stride 4" in text
    assert "MSNAS search is costed in MAdds" in text
    db = sqlite3.connect(os.path.join(out, "search.sqlite"))
    assert len(page.rows) == db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    db.close()


def test_bad_output_folders_are_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    damaged, blank = tmp_path / "damaged", tmp_path / "blank"
    for folder, data in ((damaged, b"not a database, just bytes" * 100), (blank, b"")):
        folder.mkdir()
        (folder / "search.sqlite").write_bytes(data)
    for folder in (tmp_path / "missing", empty, damaged, blank):
        done = _report(str(folder))
        assert done.returncode == 2, (folder, done.stderr)
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error:")
        assert not (folder / "report.html").exists()


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(mnasfpn_page, tmp_path):
    from PIL import Image
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={shot}", "--window-size=1200,3000",
                    f"file://{mnasfpn_page[0]}"], capture_output=True, timeout=180)
    assert shot.exists(), "chromium wrote no screenshot"
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 3000)
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50  # not blank: text, plots, cells
    pixels = image.width * image.height
    white = sum(n for n, c in colors if min(c) >= 245)
    assert pixels - white > 0.03 * pixels
