"""Bad input to every CLI: one line that names the problem and the fix, exit 2, no traceback.

Each case is a finding of issue 19 ("We tried 114 bad inputs"). The search CLIs import no
TensorFlow before they validate, so they run as real `python -m` subprocesses; the others
run as `python -m` would, in one subprocess that pays TensorFlow's import once
(tests/cli_batch.py). Every case fails before a model is trained.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _one_line(result: dict, needle: str, code: int = 2) -> None:
    err = result["stderr"].strip()
    assert result["code"] == code, (result["code"], err[-3000:], result["stdout"][-1000:])
    assert "Traceback" not in err, err[-3000:]
    assert needle in err, err[-3000:]
    assert len(err.splitlines()) == 1, err[-3000:]


def _run(module: str, *args, cwd=None) -> dict:
    p = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True,
                       text=True, timeout=300, cwd=cwd or ROOT)
    return {"code": p.returncode, "stdout": p.stdout, "stderr": p.stderr}


# ---------------------------------------------------------------- search configs (no TF)
SEARCH_CASES = [
    ("seed: abc", "seed must be an integer, got 'abc' (a string)"),
    ("reward: {target_ms: '25'}", "reward.target_ms must be a number (or null), got '25'"),
    ("latency: {input_size: '320'}", "latency.input_size must be an integer, got '320'"),
    ("proxy: {train_steps: x}", "proxy.train_steps must be an integer, got 'x'"),
    ("ppo: {learning_rate: fast}", "ppo.learning_rate must be a number, got 'fast'"),
    ("space_overrides: {channels: 16}", "space_overrides.channels must be a list of "
                                        "integers, got 16"),
    ("", "is empty"),
]


@pytest.mark.parametrize("yaml_text, needle", SEARCH_CASES)
def test_search_config_types(tmp_path, yaml_text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    out = tmp_path / "out"
    _one_line(_run("search.controller", "--config", path, "--out", out), needle)
    assert not (out / "search.sqlite").exists()


@pytest.mark.parametrize("yaml_text, needle", [
    ("evolution: {mutation_prob: high}", "evolution.mutation_prob must be a number, got "
                                         "'high'"),
    ("evolution: {population: 2.5}", "evolution.population must be an integer, got 2.5"),
])
def test_evolution_config_types(tmp_path, yaml_text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    _one_line(_run("search.evolution", "--config", path, "--out", tmp_path / "out"), needle)


def test_a_failed_start_leaves_no_database_behind(tmp_path):
    """The LUT cannot be reached (no adb): refused, and the corrected rerun is not told
    that search.sqlite already exists."""
    out = tmp_path / "out"
    bad = tmp_path / "bad.yaml"
    bad.write_text("evaluator: toy\nlatency: {source: lut, backend: android, "
                   "benchmark_binary: /no/such/benchmark_model}\n")
    result = _run("search.controller", "--config", bad, "--out", out)
    assert result["code"] == 2 and "Traceback" not in result["stderr"], result["stderr"]
    assert not (out / "search.sqlite").exists()
    good = tmp_path / "good.yaml"
    good.write_text("evaluator: toy\nbudget: 4\nppo: {update_every: 2}\nlatency: {source: none}\n")
    rerun = _run("search.controller", "--config", good, "--out", out, "--quiet")
    assert rerun["code"] == 0, rerun["stderr"][-2000:]
    # no latency: no frontier plot, and the results line does not claim one
    results = [l for l in rerun["stdout"].splitlines() if l.startswith("results:")]
    assert results and "frontier.png" not in results[0] and "summary.json" in results[0]
    assert not (out / "frontier.png").exists()


def test_readme_resume_command_names_the_config():
    lines = [l for l in (ROOT / "README.md").read_text().splitlines()
             if "search.controller" in l and "--resume" in l]
    assert lines and all("--config" in l for l in lines)


# ---------------------------------------------------------------- the TensorFlow CLIs
def _coco(tmp_path, annotations=True):
    from PIL import Image
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    for name in ("a.png", "b.png"):
        Image.new("RGB", (64, 48), (120, 30, 200)).save(images / name)
    data = (images / "b.png").read_bytes()
    (images / "b.png").write_bytes(data[:len(data) // 2])  # a PNG cut in half
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                       {"id": 2, "file_name": "b.png", "width": 64, "height": 48}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                             "bbox": [4, 4, 20, 20]}] if annotations else [],
            "categories": [{"id": 1, "name": "tree"}]}
    path = tmp_path / ("coco.json" if annotations else "empty.json")
    path.write_text(json.dumps(coco))
    return str(path), str(images)


_FIXTURES = """
import sys
import tensorflow as tf, tf_keras
from official.modeling import hyperparams
from mnas_tf.experiment import load_experiment
m = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(2)])
tf.train.Checkpoint(model=m).save(sys.argv[1])
hyperparams.save_params_dict_to_yaml(load_experiment("mnasfpn_synthetic"), sys.argv[2])
"""


def _checkpoint_fixtures(tmp_path) -> tuple[str, str]:
    """A checkpoint of another model (a tiny dense net) under a `model` key, and a model dir
    as mnas_tf.train leaves it (params.yaml of the published cell + a checkpoint file)."""
    model_dir = tmp_path / "trained"
    model_dir.mkdir()
    subprocess.run([sys.executable, "-c", _FIXTURES, str(tmp_path / "foreign" / "ckpt"),
                    str(model_dir / "params.yaml")], check=True, timeout=300,
                   capture_output=True, cwd=ROOT)
    (model_dir / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    return str(tmp_path / "foreign"), str(model_dir)


def _tf_cases(tmp_path):
    """(id, module, args, needle, exit code) for every TensorFlow-side finding."""
    not_a_dir = tmp_path / "a_file"
    not_a_dir.write_text("x")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("task: {model: [unclosed\n")
    empty_yaml = tmp_path / "empty.yaml"
    empty_yaml.write_text("")
    ninety = tmp_path / "ninety.yaml"
    ninety.write_text("experiment: mnasfpn_synthetic\ntask: {model: {num_classes: ninety}}\n")
    coco, images = _coco(tmp_path)
    empty, _ = _coco(tmp_path, annotations=False)
    search_dir = tmp_path / "search"
    search_dir.mkdir()
    subprocess.run([sys.executable, "-c", "import sys; from search.store import TrialStore; "
                    "TrialStore(sys.argv[1], {})", str(search_dir / "search.sqlite")],
                   check=True, cwd=ROOT, timeout=120)
    small = ["--experiment", "mnasfpn_synthetic", "--input-size", "64", "64"]
    out = str(tmp_path / "m.tflite")
    foreign, model_dir = _checkpoint_fixtures(tmp_path)
    params_before = Path(model_dir, "params.yaml").read_text()
    cases = [
        ("describe_string_number", "mnas_tf.describe", [str(ninety)],
         "task.model.num_classes must be an integer, got 'ninety' (a string)", 2),
        ("describe_dotted_override", "mnas_tf.describe",
         ["--params-override", "task.model.num_classes=ninety"],
         "task.model.num_classes must be an integer, got 'ninety'", 2),
        ("train_string_number", "mnas_tf.train",
         ["--experiment", "mnasfpn_synthetic", "--model-dir", str(tmp_path / "t"),
          "--params-override", "trainer.train_steps=abc"],
         "trainer.train_steps must be an integer, got 'abc'", 2),
        ("train_unwritable_model_dir", "mnas_tf.train",
         ["--experiment", "mnasfpn_synthetic", "--model-dir", str(not_a_dir / "run")],
         f"--model-dir {not_a_dir / 'run'} cannot be written", 2),
        ("train_other_architecture", "mnas_tf.train",
         ["--experiment", "mnasfpn_synthetic", "--model-dir", model_dir,
          "--params-override", "task.model.decoder.mnasfpn.architecture=conn_search"],
         "holds a checkpoint of a different model (differs in "
         "task.model.decoder.mnasfpn.architecture)", 2),
        ("train_bad_second_yaml", "mnas_tf.train",
         ["--experiment", "mnasfpn_synthetic", "--config", str(bad_yaml),
          "--model-dir", str(tmp_path / "t2")], f"{bad_yaml} is not valid YAML", 2),
        ("train_empty_yaml", "mnas_tf.train",
         ["--config", str(empty_yaml), "--model-dir", str(tmp_path / "t3")],
         f"{empty_yaml} is empty", 2),
        ("export_missing_checkpoint", "export.tflite",
         [*small, "--checkpoint", "/no/such/dir", "--out", out], "no checkpoint found at "
                                                                "/no/such/dir", 2),
        ("export_qat_zero_steps", "export.tflite",
         [*small, "--random-weights", "--quant", "qat", "--qat-steps", "0", "--out", out],
         "--qat-steps must be positive, got 0", 2),
        ("export_no_checkpoint", "export.tflite", [*small, "--out", out],
         "no --checkpoint given; pass the --model-dir of mnas_tf.train, or --random-weights",
         2),
        ("export_unwritable_out", "export.tflite",
         [*small, "--random-weights", "--out", str(not_a_dir / "m.tflite")],
         "--out", 2),
        ("export_input_size_rule", "export.tflite",
         ["--experiment", "mnasfpn_synthetic", "--input-size", "100", "100",
          "--random-weights", "--out", out], "input size 100x100 must be a multiple of 64", 2),
        ("export_other_architecture", "export.tflite",
         [*small, "--checkpoint", foreign, "--out", out],
         "does not fit this model (a different architecture or experiment?)", 2),
        ("prepare_truncated_png", "mnas_tf.data",
         ["prepare", "--annotations", coco, "--images", images, "--out",
          str(tmp_path / "records")], "cannot read image", 2),
        ("prepare_empty_annotations", "mnas_tf.data",
         ["prepare", "--annotations", empty, "--images", images, "--out",
          str(tmp_path / "records_empty"), "--skip-bad"], "has no annotations", 0),
        ("retrain_unknown_experiment", "search.retrain",
         ["--search", str(search_dir), "--targets", "20", "--experiment", "nope"],
         "--experiment: unknown experiment 'nope'", 2),
        ("lut_space_override_type", "latency.lut",
         ["build", "--space-overrides", '{"channels": 16}', "--table-dir",
          str(tmp_path / "lut")], "--space-overrides.channels must be a list of integers, "
                                  "got 16", 2),
        ("lut_missing_estimate_spelling", "latency.lut",
         ["predict", str(ROOT / "configs/architectures/mnasfpn.json"), "--missing",
          "estimate", "--table-dir", str(tmp_path / "lut_empty")],
         "--missing estimate has nothing to scale from", 2),
    ]
    return cases, {"model_dir": model_dir, "params_before": params_before,
                   "coco": coco, "images": images, "records": tmp_path / "records_skip"}


@pytest.fixture(scope="module")
def tf_results(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bad_input")
    cases, extra = _tf_cases(tmp_path)
    # with --skip-bad the truncated image is skipped (and counted), the rest written
    cases.append(("prepare_skip_bad", "mnas_tf.data",
                  ["prepare", "--annotations", extra["coco"], "--images", extra["images"],
                   "--out", str(extra["records"]), "--skip-bad"], "unreadable_image 1", 0))
    spec = tmp_path / "cases.json"
    spec.write_text(json.dumps([{"id": c[0], "module": c[1], "args": c[2]} for c in cases]))
    p = subprocess.run([sys.executable, str(ROOT / "tests" / "cli_batch.py"), str(spec)],
                       capture_output=True, text=True, timeout=900, cwd=ROOT)
    rows = {}
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            rows[row["id"]] = row
    assert len(rows) == len(cases), p.stderr[-3000:]
    return {c[0]: (rows[c[0]], c[3], c[4]) for c in cases}, extra


TF_IDS = ["describe_string_number", "describe_dotted_override", "train_string_number",
          "train_unwritable_model_dir", "train_other_architecture", "train_bad_second_yaml",
          "train_empty_yaml", "export_missing_checkpoint", "export_qat_zero_steps",
          "export_no_checkpoint", "export_unwritable_out", "export_input_size_rule",
          "export_other_architecture", "prepare_truncated_png", "retrain_unknown_experiment",
          "lut_space_override_type", "lut_missing_estimate_spelling"]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", TF_IDS)
def test_tensorflow_cli_bad_input(tf_results, case):
    results, _ = tf_results
    result, needle, code = results[case]
    _one_line(result, needle, code)


@pytest.mark.timeout(900)
def test_foreign_model_dir_is_left_untouched(tf_results):
    _, extra = tf_results
    assert Path(extra["model_dir"], "params.yaml").read_text() == extra["params_before"]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", ["prepare_empty_annotations", "prepare_skip_bad"])
def test_prepare_warnings_succeed(tf_results, case):
    results, extra = tf_results
    result, needle, code = results[case]
    assert result["code"] == code and needle in result["stderr"], result["stderr"][-2000:]
    assert "Traceback" not in result["stderr"]
    if case == "prepare_skip_bad":
        written = json.loads(Path(extra["records"], "train.json").read_text())
        assert [i["id"] for i in written["images"]] == [1]
