"""`python -m latency.lut`: build, use and check the connectivity-based latency table.

    python -m latency.lut build --backend host [--space mnasfpn] [--space-overrides JSON]
    python -m latency.lut predict ARCH.json [--json]
    python -m latency.lut fidelity --n 50 --seed S [--space NAME] [--json]

`build` measures every op the space can produce (single-op models, batched conversion),
the backbone as one subgraph, the per-invoke overhead, and a constant fitted on a few
calibration architectures measured end to end; it resumes where it stopped. Spaces are
those of `search.space` (mnasfpn, no_expand, conn_search, nasfpnlite_s);
`--space-overrides '{"channels": [16], "kernels": [3]}'` restricts one (any CellSpace
field), e.g. for a quick table. One table per device holds the union of every space
built into it: a second space measures only the op keys the first lacked. `fidelity`
measures N held-out random architectures of a space end to end and compares with the
predictions. Tables live in ~/.cache/mnas_tf/latency (or $MNAS_TF_LATENCY_DIR), one per
device.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
from typing import Optional, Sequence

import numpy as np

from mnas_tf import console  # first: quiets TensorFlow before it loads
from latency.errors import LatencyError
from latency.graph import OpKey
from latency.ops import DetectorShape, space_op_keys
from latency.table import LatencyPredictor, LatencyTable

DEFAULT_EXPERIMENT = "mnasfpn_mobilenetv2_coco"
CALIBRATION_SEED = 1_000_003  # calibration architectures never overlap a fidelity seed's
BATCH = 64


def load_shape(experiment: str, input_size: Optional[Sequence[int]]):
    """(params, DetectorShape) of an experiment at an optional input size."""
    from mnas_tf.experiment import load_experiment
    layers = [{"task": {"model": {"input_size": [*input_size, 3]}}}] if input_size else []
    params = load_experiment(experiment, layers)
    return params, DetectorShape.from_params(params)


def _measure_bytes(backend, flatbuffer: bytes, threads: int, warmup: int, runs: int):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as f:
            f.write(flatbuffer)
        return backend.measure(path, threads=threads, warmup=warmup, runs=runs)


def measure_ops(table: LatencyTable, keys: Sequence[OpKey], backend, threads: int,
                warmup: int = 10, runs: int = 50, progress: bool = True) -> int:
    """Measures the keys the table lacks, committing each batch (resumable)."""
    from tqdm import tqdm

    from latency.microbench import single_op_models
    todo = table.missing(keys)
    with tqdm(total=len(todo), desc="measuring ops", unit="op", disable=not progress) as bar:
        for start in range(0, len(todo), BATCH):
            batch = todo[start:start + BATCH]
            rows = []
            for key, model in zip(batch, single_op_models(batch)):
                r = _measure_bytes(backend, model, threads, warmup, runs)
                rows.append((str(key), r.median_ms * 1e3, r.mean_ms * 1e3,
                             (r.std_ms or 0.0) * 1e3, r.runs))
                bar.update()
            table.put(rows)
    return len(todo)


def _trivial_model() -> bytes:
    from latency.microbench import single_op_models
    key = OpKey("ADD", ((1, 1, 1, 1), (1, 1, 1, 1)), (1, 1, 1, 1))
    return single_op_models([key])[0]


def detector_flatbuffer(params, spec=None, backbone_only: bool = False, model=None) -> bytes:
    """Float TFLite of the experiment's raw detector (or its backbone) with `spec` as head.
    `model`, a task model already built from `params`, saves building it again (the
    enumeration test converts the detector and its backbone from one model)."""
    import tf_keras
    from official.core import task_factory

    from export.tflite import convert
    from mnas_tf.modeling.factory import build_raw_detector
    if spec is not None:
        if model is not None:
            raise ValueError("pass either spec or a built model, not both")
        params = params.replace(task={"model": {"decoder": {"mnasfpn": {
            "architecture": spec.to_json()}}}})
    if model is None:
        model = task_factory.get_task(params.task).build_model()
    size = tuple(params.task.model.input_size[:2])
    if backbone_only:
        image = tf_keras.Input((*size, 3), batch_size=1)
        return convert(tf_keras.Model(image, model.backbone(image)))
    return convert(build_raw_detector(model, size))


def architecture_key(spec, shape: DetectorShape) -> str:
    text = json.dumps({"spec": spec.to_dict(), "shape": repr(shape)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def measure_architecture(table, params, shape, spec, backend, threads, warmup=10, runs=50):
    """End-to-end median latency (ms) of `spec`, cached in the table's database."""
    key = architecture_key(spec, shape)
    cached = table.model_latency(key)
    if cached is None:
        flatbuffer = detector_flatbuffer(params, spec)
        cached = _measure_bytes(backend, flatbuffer, threads, warmup, runs).median_ms
        table.put_model_latency(key, cached)
    return cached


def sample_architectures(n: int, seed: int, space=None) -> list:
    """`n` architectures of `space` (default MnasFPN). The MnasFPN family keeps the
    rejection sampler (uniform over valid cells, and the same draws as before for a seed,
    so cached end-to-end latencies and reported fidelity sets stay valid); it only draws
    MnasFPN blocks, so other families use the controller's decision sampler."""
    from search.space import MnasFPNSpace
    space = space or MnasFPNSpace()
    rng = np.random.default_rng(seed)
    if space.family == "mnasfpn":
        return [space.sample(rng) for _ in range(n)]
    return [space.decode(space.sample_decisions(rng)) for _ in range(n)]


def space_record(space) -> dict:
    """A space as JSON data (every CellSpace field), to remember which spaces a table's
    constant was calibrated on."""
    return json.loads(json.dumps(dataclasses.asdict(space)))


def _space_from_record(record: dict):
    from search.space import CellSpace
    return CellSpace(**{k: tuple(v) if isinstance(v, list) else v for k, v in record.items()})


def table_ready(table, shape: DetectorShape, space) -> bool:
    """Whether `table` prices every architecture of `space` at `shape`: the backbone and
    every op key of the space are measured and the constant was calibrated at this shape
    with this space among its calibration spaces. Pure Python (no measurement)."""
    calibrated = [r["space"] for r in table.meta("calibrated_spaces", [])]
    return (table.meta("constant_us") is not None
            and table.meta("calibration_shape") == repr(shape)
            and space_record(space) in calibrated
            and not table.missing([shape.backbone_key(), *space_op_keys(space, shape)]))


def build(table, params, shape, backend, threads: int, calibration: int = 3,
          progress: bool = True, space=None) -> dict:
    """Fills the table for `space` (a `search.space.CellSpace`, default MnasFPN) at `shape`
    and calibrates its constant. Only keys the table lacks are measured, so building a
    second space into a device's table measures just the ops the first did not have."""
    from search.space import MnasFPNSpace
    space = space or MnasFPNSpace()
    start = time.perf_counter()
    if table.meta("invoke_overhead_us") is None:
        r = _measure_bytes(backend, _trivial_model(), threads, 10, 200)
        table.set_meta("invoke_overhead_us", r.median_ms * 1e3)
    backbone = shape.backbone_key()
    if backbone not in table:
        r = _measure_bytes(backend, detector_flatbuffer(params, backbone_only=True), threads,
                           10, 50)
        table.put([(str(backbone), r.median_ms * 1e3, r.mean_ms * 1e3,
                    (r.std_ms or 0.0) * 1e3, r.runs)])
    keys = space_op_keys(space, shape)
    measured = measure_ops(table, keys, backend, threads, progress=progress)
    calibrate(table, params, shape, backend, threads, calibration, progress, space)
    return {"table": table.path, "space": space.name, "entries": len(table),
            "space_keys": len(keys), "measured_now": measured,
            "invoke_overhead_us": table.invoke_overhead_us, "constant_us": table.constant_us,
            "calibrated_spaces": [r["space"]["name"] for r in table.meta("calibrated_spaces")],
            "seconds": round(time.perf_counter() - start, 1)}


def calibrate(table, params, shape, backend, threads, count: int, progress: bool = True,
              space=None):
    """The constant: median of (measured - summed entries) over `count` architectures of
    `space` and of every space calibrated into this table before, so a table shared by
    several spaces gets one constant fitted on all of them instead of the last one's.
    End-to-end latencies are cached in the table: earlier spaces' architectures are only
    measured again at a new input size. The meta is written once all are measured."""
    from tqdm import tqdm

    from search.space import MnasFPNSpace
    record = {"space": space_record(space or MnasFPNSpace()), "count": count}
    spaces = [r for r in table.meta("calibrated_spaces", []) if r["space"] != record["space"]]
    spaces.append(record)
    specs = [spec for r in spaces
             for spec in sample_architectures(r["count"], CALIBRATION_SEED,
                                              _space_from_record(r["space"]))]
    predictor = LatencyPredictor(table, shape)
    residuals = []
    for spec in tqdm(specs, desc="calibrating", unit="model", disable=not progress):
        measured = measure_architecture(table, params, shape, spec, backend, threads)
        predicted = predictor.predict(spec)
        residuals.append(measured - (predicted.total_ms - predicted.parts_ms["overhead"]))
    table.set_meta("constant_us", float(np.median(residuals)) * 1e3 if residuals else 0.0)
    table.set_meta("calibration_shape", repr(shape))
    table.set_meta("calibrated_spaces", spaces)


def fidelity_metrics(measured: Sequence[float], predicted: Sequence[float]) -> dict:
    """R^2 against the identity line, MAPE, share within +-10%, Kendall tau."""
    from scipy.stats import kendalltau
    y, p = np.asarray(measured, float), np.asarray(predicted, float)
    ss_res = float(((y - p) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    rel = np.abs(p - y) / y
    return {"n": int(len(y)), "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
            "mape": float(rel.mean() * 100), "within_10pct": float((rel <= 0.10).mean() * 100),
            "kendall_tau": float(kendalltau(y, p)[0]) if len(y) > 1 else float("nan"),
            "measured_ms": [round(v, 3) for v in y], "predicted_ms": [round(v, 3) for v in p]}


def fidelity(table, params, shape, backend, threads, n: int, seed: int,
             progress: bool = True, space=None) -> dict:
    """Predicted vs measured end to end on `n` held-out architectures of `space`."""
    from tqdm import tqdm
    predictor = LatencyPredictor(table, shape)
    measured, predicted = [], []
    for spec in tqdm(sample_architectures(n, seed, space), desc="measuring held-out models",
                     unit="model", disable=not progress):
        predicted.append(predictor.predict(spec).total_ms)
        measured.append(measure_architecture(table, params, shape, spec, backend, threads))
    return fidelity_metrics(measured, predicted)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m latency.lut", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--backend", choices=("host", "android"), default="host")
    common.add_argument("--serial")
    common.add_argument("--benchmark-binary", metavar="PATH")
    common.add_argument("--remote-binary", metavar="PATH")
    common.add_argument("--cpu-mask", metavar="HEX")
    common.add_argument("--timeout", type=float, default=600.0)
    common.add_argument("--threads", type=int, default=1)
    common.add_argument("--experiment", default=DEFAULT_EXPERIMENT,
                        help="fixes backbone, classes and anchors (default %(default)s)")
    common.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"))
    common.add_argument("--table-dir", help=f"default {table_dir_default()}")
    common.add_argument("--json", action="store_true")
    spaces = argparse.ArgumentParser(add_help=False)
    spaces.add_argument("--space", default="mnasfpn",
                        help="search space (mnasfpn, no_expand, conn_search, nasfpnlite_s; "
                             "default %(default)s)")
    spaces.add_argument("--space-overrides", metavar="JSON", default="{}",
                        help='JSON object of space settings, e.g. \'{"channels": [16], '
                             '"kernels": [3]}\' (any field of search.space.CellSpace)')
    b = sub.add_parser("build", parents=[common, spaces],
                       help="measure the table for a space")
    b.add_argument("--calibration", type=int, default=3,
                   help="architectures measured end to end to fit the constant")
    p = sub.add_parser("predict", parents=[common], help="predict one architecture")
    p.add_argument("architecture", help="spec JSON file, shipped name or inline JSON")
    p.add_argument("--missing", choices=("error", "estimate"), default="error")
    f = sub.add_parser("fidelity", parents=[common, spaces],
                       help="predicted vs measured on random architectures of a space")
    f.add_argument("--n", type=int, default=50)
    f.add_argument("--seed", type=int, default=0)
    return parser


def table_dir_default() -> str:
    from latency.table import table_dir
    return table_dir()


def parse_space(name: str, overrides_json: str = "{}"):
    """`search.space.get_space(name, **overrides)` from CLI text; ValueError (one line)
    for an unknown name, bad JSON or an unknown setting."""
    from search.space_settings import space_from_settings
    try:
        overrides = json.loads(overrides_json)
    except json.JSONDecodeError as e:
        raise ValueError(f"--space-overrides is not valid JSON: {e}") from None
    if not isinstance(overrides, dict):
        raise ValueError(f"--space-overrides must be a JSON object of space settings, got "
                         f"{overrides_json}")
    return space_from_settings(name, overrides, "--space-overrides")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(console.cli(argv))
    from mnas_tf.arch import ArchitectureError, load_architecture
    from mnas_tf.experiment import ConfigError
    from latency.benchmark import _backend_kwargs
    from latency.measure import get_backend
    try:
        if args.threads < 1:
            raise LatencyError("--threads must be >= 1")
        space = parse_space(args.space, args.space_overrides) if "space" in args else None
        params, shape = load_shape(args.experiment, args.input_size)
        args.op_profiling = False
        backend = get_backend(args.backend, **_backend_kwargs(args))
        table = LatencyTable.for_device(backend.fingerprint(args.threads), args.table_dir)
        if args.command == "build":
            result = build(table, params, shape, backend, args.threads, args.calibration,
                           progress=not args.json, space=space)
        elif args.command == "predict":
            spec = load_architecture(args.architecture)
            start = time.perf_counter()
            prediction = LatencyPredictor(table, shape, args.missing).predict(spec)
            result = {**prediction.to_dict(), "table": table.path,
                      "predict_ms": (time.perf_counter() - start) * 1e3}
        else:
            if args.n < 2:
                raise LatencyError("--n must be at least 2 to compute R^2 and Kendall tau")
            result = fidelity(table, params, shape, backend, args.threads, args.n, args.seed,
                              progress=not args.json, space=space)
    except (LatencyError, ArchitectureError, ConfigError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        _print_human(args.command, result)
    return 0


def _print_human(command: str, result: dict) -> None:
    if command == "predict":
        parts = ", ".join(f"{k} {v:.2f}" for k, v in result["parts_ms"].items())
        print(f"predicted latency {result['total_ms']:.2f} ms ({parts} ms)")
        if result["estimated_ops"]:
            print(f"warning: {result['estimated_ops']} op(s) had no entry and were estimated")
    elif command == "fidelity":
        print(f"n={result['n']}  R^2 {result['r2']:.4f}  MAPE {result['mape']:.2f}%  "
              f"within +-10% {result['within_10pct']:.1f}%  Kendall tau "
              f"{result['kendall_tau']:.3f}")
    else:
        print("\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    raise SystemExit(main())
