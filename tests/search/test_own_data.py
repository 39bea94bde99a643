"""Search on your own dataset: the `data:` section, its cache, its errors, and one tiny
end-to-end proxy search on a 2-class COCO dataset (issue 19's bug report)."""

import json
import os
import subprocess
import sys

import pytest

from search.config import SearchConfigError, load_config
from search.data import resolve_data
from tests.own_data import write_dataset

HERE = os.path.dirname(__file__)
TINY_PROXY = os.path.join(HERE, "configs", "tiny_proxy.yaml")
ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MNAS_TF_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("MNAS_TF_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _sets(ann, images, val=None):
    out = [f"data.train.annotations={ann}", f"data.train.images={images}"]
    if val:
        out += [f"data.val.annotations={val[0]}", f"data.val.images={val[1]}"]
    return out


def test_data_section_prepares_once_and_holds_out_val(data_env, monkeypatch):
    ann, images = write_dataset(str(data_env))
    config = load_config(TINY_PROXY, sets=_sets(ann, images))
    resolved = resolve_data(config, progress=False)
    p = resolved.proxy
    assert p.train_data.endswith("train-?????-of-?????.tfrecord")
    assert p.val_data.endswith("val-?????-of-?????.tfrecord")
    assert {"task": {"model": {"num_classes": 2}}} in p.params_override
    assert resolved.supernet.num_classes == 2 and resolved.supernet.train_data == p.train_data
    with open(p.val_annotations) as f:
        val_ids = {img["id"] for img in json.load(f)["images"]}
    with open(os.path.join(os.path.dirname(os.path.dirname(p.val_data)), "splits",
                           "train.json")) as f:
        train_ids = {img["id"] for img in json.load(f)["images"]}
    assert val_ids and train_ids and not val_ids & train_ids
    assert len(val_ids | train_ids) == 6
    import importlib
    mod = importlib.import_module("mnas_tf.data.prepare")
    monkeypatch.setattr(mod, "prepare", lambda *a, **k: pytest.fail("prepared twice"))
    assert resolve_data(config, progress=False) == resolved  # cached: nothing re-prepared


def test_data_section_with_val_and_params_reach_the_proxy(data_env):
    ann, images = write_dataset(str(data_env), num_images=3)
    val = write_dataset(str(data_env), num_images=2, name="val")
    config = resolve_data(load_config(TINY_PROXY, sets=_sets(ann, images, val)),
                          progress=False)
    from mnas_tf.data_paths import resolve_data_paths
    from mnas_tf.experiment import load_experiment
    params = resolve_data_paths(load_experiment(config.proxy.experiment, [
        {"task": {"train_data": {"input_path": config.proxy.train_data},
                  "validation_data": {"input_path": config.proxy.val_data},
                  "annotation_file": config.proxy.val_annotations}},
        *config.proxy.params_override]), progress=False)
    assert params.task.model.num_classes == 2
    with open(params.task.annotation_file) as f:
        assert len(json.load(f)["images"]) == 2
    from mnas_tf.warm_start import cached_checkpoint
    assert cached_checkpoint(config.proxy) is None  # resolves the user's data, no ValueError


@pytest.mark.parametrize("bad, needle", [
    ("missing_json", "annotation file not found"),
    ("not_coco", "not a COCO detection file"),
    ("missing_image", "002.jpg"),
    ("empty", "no annotations"),
    ("missing_dir", "image folder not found"),
])
def test_bad_data_fails_before_training_in_one_line(data_env, bad, needle):
    ann, images = write_dataset(str(data_env), num_images=3)
    if bad == "missing_json":
        ann = str(data_env / "nope.json")
    elif bad == "not_coco":
        with open(ann, "w") as f:
            json.dump({"images": []}, f)
    elif bad == "missing_image":
        os.remove(os.path.join(images, "002.jpg"))
    elif bad == "empty":
        with open(ann) as f:
            data = json.load(f)
        with open(ann, "w") as f:
            json.dump({**data, "annotations": []}, f)
    elif bad == "missing_dir":
        images = str(data_env / "no_images")
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "search.controller", "--config", TINY_PROXY, "--quiet",
         "--out", str(data_env / "out"), "--train-annotations", ann, "--train-images", images],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(data_env / "out" / "search.sqlite")


def test_config_rejects_malformed_data_section():
    with pytest.raises(SearchConfigError, match="data.train must be"):
        load_config(TINY_PROXY, sets=["data.val_fraction=0.5"])
    with pytest.raises(SearchConfigError, match="unknown key"):
        load_config(TINY_PROXY, sets=["data.train.annotatons=x", "data.train.images=y"])


def test_tiny_search_on_two_class_dataset(data_env):
    """The bug report's scenario: num_classes 2, a warm start, the real proxy evaluator."""
    ann, images = write_dataset(str(data_env), num_images=6, size=128)
    from search import controller
    out = str(data_env / "run")
    code = controller.main(["--config", TINY_PROXY, "--quiet", "--out", out,
                            "--train-annotations", ann, "--train-images", images,
                            "--set", "budget=1", "--set", "proxy.input_size=128",
                            "--set", "proxy.warm_start_steps=2"])
    assert code == 0
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert summary["best"] is not None
    assert summary["categories"] == [{"id": 1, "name": "tree"}]  # the names from the data


def test_retrain_uses_the_searchs_data(data_env, monkeypatch, capsys):
    from mnas_tf.arch import load_architecture
    from mnas_tf.config_files import ConfigError
    from mnas_tf.spaces import canonical_dict
    from search import retrain
    from search.store import DB_NAME, DONE, TrialStore, arch_hash
    ann, images = write_dataset(str(data_env), num_images=4)
    config = load_config(overrides={"evaluator": "toy", "reward": {"target_ms": 10.0},
                                    "latency": {"source": "none"}},
                         sets=_sets(ann, images))
    out = data_env / "search"
    store = TrialStore(str(out / DB_NAME), config.run_config())
    arch = canonical_dict(load_architecture("mnasfpn"))
    store.finish(store.add(arch, arch_hash(arch), 0), status=DONE, map=0.5, latency_ms=8.0,
                 reward=0.5)
    store.close()
    seen = {}

    def retrain_model(target, trial, repeats, args, pricer):
        seen["overrides"] = list(args.params_override)
        raise ConfigError("stop here")

    monkeypatch.setattr(retrain, "retrain_model", retrain_model)
    assert retrain.main(["--search", str(out), "--no-measure", "--no-export",
                         "--repeats", "1"]) == 2
    task = json.loads(seen["overrides"][0])["task"]
    assert task["model"]["num_classes"] == 2 and task["annotation_file"].endswith("val.json")


def test_supernet_gets_the_data_and_num_classes(data_env):
    from search.evaluators.supernet.training import proxy_config
    ann, images = write_dataset(str(data_env), num_images=4)
    config = resolve_data(load_config(overrides={"space": "msnas", "evaluator": "supernet",
                                                 "latency": {"source": "none"},
                                                 "reference_architectures": []},
                                      sets=_sets(ann, images)), progress=False)
    proxy = proxy_config(config)
    assert proxy.train_data == config.proxy.train_data
    assert proxy.val_annotations == config.proxy.val_annotations
    assert {"task": {"model": {"num_classes": 2}}} in proxy.params_override


def test_evolution_cli_takes_the_data_flags():
    from search import cli
    args = cli.parser("python -m search.evolution", "", None).parse_args(
        ["--train-annotations", "a b.json", "--train-images", "imgs"])
    assert cli.data_sets(args) == ['data.train.annotations="a b.json"',
                                   'data.train.images="imgs"']
