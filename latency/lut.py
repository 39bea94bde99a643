"""`python -m latency.lut`: build, use and check the connectivity-based latency table.

    python -m latency.lut build --backend host [--space mnasfpn] [--space-overrides JSON]
                                [--quant int8] [--threads N]
    python -m latency.lut predict ARCH.json [--json] [--quant int8]
    python -m latency.lut fidelity --n 50 --seed S [--space NAME] [--json] [--quant int8]

`build` measures every op the space can produce (single-op models, batched conversion)
in --rounds rounds spread over the build (an entry is the fastest round; keys whose
rounds disagree are measured again), the backbone as one subgraph, the per-invoke
overhead, and fits per-op-class factors (`latency.calibration`) on --calibration
architectures measured end to end, picked across the space's latency range from their
own seed stream; it resumes where it stopped. The load of other processes is checked
before and during measuring (waits up to --max-wait s, then warns). Every command first
runs the speed probe (`latency.probe`, < 1 s): a table built on a device that probed
differently is rebuilt by `build` and refused by `predict` and `fidelity`.
`--quant int8` prices the export's full-integer model (`export.tflite --quant int8`);
float32 and int8, and each thread count, have tables of their own. Spaces are
those of `mnas_tf.spaces` (mnasfpn, no_expand, conn_search, nasfpnlite_s);
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
import functools
import hashlib
import json
import os
import sys
import tempfile
import time
from typing import Optional, Sequence

import numpy as np

from mnas_tf import console  # first: quiets TensorFlow before it loads
from latency.calibration import Calibration, fit
from latency.errors import LatencyError
from latency.graph import OpKey
from latency.ops import DetectorShape, space_op_keys
from latency.table import LatencyPredictor, LatencyTable
from mnas_tf.spaces import CellSpace, MnasFPNSpace
from mnas_tf.spaces.settings import space_from_settings

DEFAULT_EXPERIMENT = "mnasfpn_mobilenetv2_coco"
CALIBRATION_SEED = 1_000_003  # calibration architectures never overlap a fidelity seed's
CALIBRATION_CANDIDATES = 200  # drawn, then `count` picked across their predicted range
BATCH = 64
ROUNDS = 3
ROUND_WARMUP, ROUND_RUNS = 10, 30
OUTLIER_SPREAD = 0.25  # rounds of one key further apart than this (relative) are re-measured
EXTRA_ROUNDS = 2
QUANTS = ("float32", "int8")


def load_shape(experiment: str, input_size: Optional[Sequence[int]], quant: str = "float32"):
    """(params, DetectorShape) of an experiment at an optional input size; `quant` int8
    keys every op (and the backbone subgraph) as the export's full-integer model."""
    from mnas_tf.experiment import load_experiment
    if quant not in QUANTS:
        raise LatencyError(f"--quant must be one of {', '.join(QUANTS)} (got {quant!r})")
    layers = [{"task": {"model": {"input_size": [*input_size, 3]}}}] if input_size else []
    params = load_experiment(experiment, layers)
    return params, dataclasses.replace(DetectorShape.from_params(params), dtype=quant)


def device_table(backend, threads: int, table_dir: Optional[str] = None,
                 quant: str = "float32", rebuild: bool = False,
                 tolerance: Optional[float] = None) -> LatencyTable:
    """The table of this device, threads and quantization, checked against the speed
    probe measured now (see `LatencyTable.for_device`): rebuilt on a mismatch with
    `rebuild`, else refused."""
    import os as _os

    from latency.probe import measure_probe
    if getattr(backend, "name", "") == "host" and threads > (_os.cpu_count() or 1):
        raise LatencyError(f"--threads {threads}: this host has {_os.cpu_count()} cores; "
                           f"build tables for at most that many threads here")
    fingerprint = {**backend.fingerprint(threads), "quant": quant}
    return LatencyTable.for_device(fingerprint, table_dir, measure_probe(backend, threads),
                                   tolerance, rebuild)


def load_monitor(backend, wait_s: float = 20.0, log=None):
    """A `latency.load.LoadMonitor` reading the backend's device (None if it cannot)."""
    from latency.load import LoadMonitor
    reader = getattr(backend, "read_load", None)
    if reader is None:
        return None
    if getattr(backend, "name", "") == "host":
        return LoadMonitor(reader, wait_s=wait_s, log=log)
    # on a phone this process uses no CPU, and its benchmark runs are checked between runs
    return LoadMonitor(reader, wait_s=wait_s, log=log, own=lambda: 0.0, fresh_checks=True)


def _measure_bytes(backend, flatbuffer: bytes, threads: int, warmup: int, runs: int):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as f:
            f.write(flatbuffer)
        return backend.measure(path, threads=threads, warmup=warmup, runs=runs)


def measure_ops(table: LatencyTable, keys: Sequence[OpKey], backend, threads: int,
                warmup: int = ROUND_WARMUP, runs: int = ROUND_RUNS, progress: bool = True,
                rounds: int = ROUNDS, monitor=None, stats: Optional[dict] = None) -> int:
    """Measures the keys the table lacks in `rounds` passes over all of them (so a burst
    of load hits one round of a key, not all), committing each batch of each round
    (resumable). A key's entry is its fastest round's median; keys whose rounds differ by
    more than OUTLIER_SPREAD get up to EXTRA_ROUNDS more. `stats` receives the count of
    such outliers."""
    from tqdm import tqdm

    from latency.microbench import single_op_models
    todo = list(dict.fromkeys(table.missing(keys)))
    done = table.rounds()
    models: dict[str, bytes] = {}

    def measure(batch, round_index, bar):
        need = [k for k in batch if str(k) not in models]
        models.update({str(k): m for k, m in zip(need, single_op_models(need))})
        rows = []
        for key in batch:
            r = _measure_bytes(backend, models[str(key)], threads, warmup, runs)
            rows.append((str(key), round_index, r.median_ms * 1e3,
                         (r.min_ms if r.min_ms is not None else r.median_ms) * 1e3, r.runs,
                         None))
            done.setdefault(str(key), []).append(r.median_ms * 1e3)
            bar.update()
        if monitor is not None:
            sample = monitor.check(f"round {round_index + 1} of the op measurements")
            rows = [(*row[:5], sample.other_cores) for row in rows]
        table.put_rounds(rows)

    total = sum(max(0, rounds - len(done.get(str(k), []))) for k in todo)
    with tqdm(total=total, desc="measuring ops", unit="op", disable=not progress) as bar:
        for r in range(rounds):
            pending = [k for k in todo if len(done.get(str(k), [])) <= r]
            for start in range(0, len(pending), BATCH):
                measure(pending[start:start + BATCH], r, bar)
        outliers = [k for k in todo if _spread(done[str(k)]) > OUTLIER_SPREAD]
        bar.total += len(outliers) * EXTRA_ROUNDS
        for extra in range(EXTRA_ROUNDS):
            again = [k for k in outliers if _spread(done[str(k)]) > OUTLIER_SPREAD]
            for start in range(0, len(again), BATCH):
                measure(again[start:start + BATCH], rounds + extra, bar)
    if stats is not None:
        stats["outliers"] = stats.get("outliers", 0) + len(outliers)
    rows = []
    for key in todo:
        values = np.asarray(done[str(key)])
        rows.append((str(key), float(values.min()), float(values.mean()), float(values.std()),
                     len(values) * runs))
    table.put(rows)
    return len(todo)


def _spread(values: Sequence[float]) -> float:
    return max(values) / max(min(values), 1e-9) - 1.0


def _trivial_model() -> bytes:
    from latency.microbench import single_op_models
    key = OpKey("ADD", ((1, 1, 1, 1), (1, 1, 1, 1)), (1, 1, 1, 1))
    return single_op_models([key])[0]


def detector_flatbuffer(params, spec=None, backbone_only: bool = False, model=None,
                        quant: str = "float32") -> bytes:
    """TFLite of the experiment's raw detector (or its backbone) with `spec` as head:
    float32, or `quant` int8, the full-integer model of `export.tflite --quant int8`
    (calibrated on random images: latency does not depend on the ranges). `model`, a task
    model already built from `params`, saves building it again (the enumeration test
    converts the detector and its backbone from one model)."""
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
    rng = np.random.default_rng(0)
    representative = (lambda: ([rng.normal(0, 1, (1, *size, 3)).astype(np.float32)]
                               for _ in range(2))) if quant == "int8" else None
    if backbone_only:
        image = tf_keras.Input((*size, 3), batch_size=1)
        return convert(tf_keras.Model(image, model.backbone(image)), quant, representative)
    return convert(build_raw_detector(model, size), quant, representative)


def architecture_key(spec, shape: DetectorShape) -> str:
    text = json.dumps({"spec": spec.to_dict(), "shape": repr(shape)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def measure_architecture(table, params, shape, spec, backend, threads, warmup=10,
                         runs=ROUND_RUNS, rounds=ROUNDS):
    """End-to-end latency (ms) of `spec` (as `shape.dtype`): the fastest of `rounds`
    medians, as table entries are (one median is at the mercy of a burst of load), cached
    in the table's database."""
    key = architecture_key(spec, shape)
    cached = table.model_latency(key)
    if cached is None:
        flatbuffer = detector_flatbuffer(params, spec, **_quant(shape))
        cached = _measure_rounds(backend, flatbuffer, threads, warmup, runs, rounds) / 1e3
        table.put_model_latency(key, cached)
    return cached


def _quant(shape) -> dict:
    """detector_flatbuffer's quant argument for a shape (none for float32, so converters
    replaced in tests need not take it)."""
    return {"quant": shape.dtype} if shape.dtype != "float32" else {}


def _measure_rounds(backend, flatbuffer: bytes, threads: int, warmup: int, runs: int,
                    rounds: int) -> float:
    """Fastest of `rounds` medians (us)."""
    return min(_measure_bytes(backend, flatbuffer, threads, warmup, runs).median_ms * 1e3
               for _ in range(rounds))


def sample_architectures(n: int, seed: int, space=None) -> list:
    """`n` random architectures of `space` (default MnasFPN), pruned as they are built."""
    space = space or MnasFPNSpace()
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def space_record(space) -> dict:
    """A space as JSON data (every CellSpace field), to remember which spaces a table's
    calibration was fitted on."""
    return json.loads(json.dumps(dataclasses.asdict(space)))


def _space_from_record(record: dict):
    return CellSpace(**{k: tuple(v) if isinstance(v, list) else v for k, v in record.items()})


def table_ready(table, shape: DetectorShape, space) -> bool:
    """Whether `table` prices every architecture of `space` at `shape`: the backbone and
    every op key of the space are measured and the calibration was fitted at this shape
    with this space among its calibration spaces. Pure Python (no measurement)."""
    calibrated = [r["space"] for r in table.meta("calibrated_spaces", [])]
    return (table.meta("calibration") is not None
            and table.meta("calibration_shape") == repr(shape)
            and space_record(space) in calibrated
            and not table.missing([shape.backbone_key(), *space_op_keys(space, shape)]))


def build(table, params, shape, backend, threads: int, calibration: int = 12,
          progress: bool = True, space=None, rounds: int = ROUNDS, monitor=None) -> dict:
    """Fills the table for `space` (a `mnas_tf.spaces.CellSpace`, default MnasFPN) at `shape`
    and fits its calibration. Only keys the table lacks are measured, so building a
    second space into a device's table measures just the ops the first did not have.
    `monitor` (`latency.load.LoadMonitor`) checks other processes' load before and
    during measuring; its summary is in the result."""
    space = space or MnasFPNSpace()
    start = time.perf_counter()
    if monitor is not None:
        monitor.settle("the table build")
    if table.meta("invoke_overhead_us") is None:
        table.set_meta("invoke_overhead_us",
                       _measure_rounds(backend, _trivial_model(), threads, 10, 200, rounds))
    backbone = shape.backbone_key()
    if backbone not in table:
        us = _measure_rounds(backend, detector_flatbuffer(params, backbone_only=True,
                                                          **_quant(shape)),
                             threads, 10, 50, rounds)
        table.put([(str(backbone), us, us, 0.0, 50 * rounds)])
    keys = space_op_keys(space, shape)
    stats: dict = {}
    measured = measure_ops(table, keys, backend, threads, progress=progress, rounds=rounds,
                           monitor=monitor, stats=stats)
    fitted = calibrate(table, params, shape, backend, threads, calibration, progress, space)
    _refresh_probe(table, backend, threads)
    table.set_meta("built_at", time.time())
    if monitor is not None:
        table.set_meta("build_load", monitor.summary())
    return {"table": table.path, "space": space.name, "entries": len(table),
            "space_keys": len(keys), "measured_now": measured, "rounds": rounds,
            "outliers_remeasured": stats.get("outliers", 0),
            "speed_probe_us": table.meta("speed_probe_us"),
            "invoke_overhead_us": table.invoke_overhead_us, "constant_us": table.constant_us,
            "calibration": fitted.to_dict(),
            "calibrated_spaces": [r["space"]["name"] for r in table.meta("calibrated_spaces")],
            "load": monitor.summary() if monitor is not None else None,
            "replaced": table.meta("replaced"),
            "seconds": round(time.perf_counter() - start, 1)}


def _refresh_probe(table, backend, threads: int) -> None:
    """Probes again after the build and keeps the faster of the two: a probe taken while
    another job held the CPU reads slow, and a table stamped with it would be refused
    once the machine is quiet again (load only ever slows the probe)."""
    from latency.probe import measure_probe
    now, stored = measure_probe(backend, threads), table.meta("speed_probe_us")
    table.set_meta("speed_probe_us", now if stored is None else min(stored, now))


def calibration_architectures(table, shape, space, count: int) -> list:
    """`count` architectures of `space` spread over its latency range: CALIBRATION_CANDIDATES
    drawn from the calibration seed stream (never a fidelity seed), priced by the plain
    sum, and picked at evenly spaced ranks from the fastest to the slowest."""
    candidates = _candidates(json.dumps(space_record(space), sort_keys=True),
                             max(CALIBRATION_CANDIDATES, count))
    predictor = LatencyPredictor(table, shape, calibration="constant")
    order = np.argsort([predictor.predict(spec).total_ms for spec in candidates], kind="stable")
    picks = np.unique(np.round(np.linspace(0, len(order) - 1, count)).astype(int))
    return [candidates[order[i]] for i in picks]


@functools.lru_cache(maxsize=16)
def _candidates(record: str, n: int) -> tuple:
    """Calibration candidates of a space (by its JSON record), drawn once per process."""
    return tuple(sample_architectures(n, CALIBRATION_SEED,
                                      _space_from_record(json.loads(record))))


def calibrate(table, params, shape, backend, threads, count: int, progress: bool = True,
              space=None) -> Calibration:
    """Fits the calibration (`latency.calibration.fit`) on `count` architectures of
    `space` and of every space calibrated into this table before, so a table shared by
    several spaces is fitted on all of them instead of the last one's. Also stores the
    old model's constant (median of measured - summed entries on the same models), which
    `fidelity` reports side by side. End-to-end latencies are cached in the table:
    earlier spaces' architectures are only measured again at a new input size. The meta
    is written once all are measured."""
    from tqdm import tqdm

    record = {"space": space_record(space or MnasFPNSpace()), "count": count}
    # records of the old 5-blocks-in-all layout (a `num_blocks` field) no longer describe
    # a space: they drop out, and this space's architectures refit the constant
    spaces = [r for r in table.meta("calibrated_spaces", [])
              if r["space"] != record["space"] and "num_blocks" not in r["space"]]
    spaces.append(record)
    specs = [spec for r in spaces
             for spec in calibration_architectures(table, shape,
                                                   _space_from_record(r["space"]), r["count"])]
    predictor = LatencyPredictor(table, shape, calibration="constant")
    features, measured = [], []
    for spec in tqdm(specs, desc="calibrating", unit="model", disable=not progress):
        measured.append(measure_architecture(table, params, shape, spec, backend, threads) * 1e3)
        features.append(predictor.class_sums(spec))
    sums = np.asarray(features).sum(axis=1)
    table.set_meta("constant_us", float(np.median(np.asarray(measured) - sums))
                   if measured else 0.0)
    fitted = fit(features, measured)
    table.set_meta("calibration", fitted.to_dict())
    table.set_meta("calibration_models", [architecture_key(s, shape) for s in specs])
    table.set_meta("calibration_shape", repr(shape))
    table.set_meta("calibrated_spaces", spaces)
    return fitted


def fidelity_metrics(measured: Sequence[float], predicted: Sequence[float]) -> dict:
    """R^2 against the identity line; MAPE, `within_5pct`/`within_10pct` (the percentage
    of architectures predicted within +-5% / +-10%) and `worst_error_pct` (the relative
    error of largest magnitude, signed: + means over-predicted), all in percent; Kendall
    tau and Spearman rho of the ranking."""
    from scipy.stats import kendalltau, spearmanr
    y, p = np.asarray(measured, float), np.asarray(predicted, float)
    ss_res = float(((y - p) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    signed = (p - y) / y
    rel = np.abs(signed)
    ranked = len(y) > 1 and np.ptp(y) > 0 and np.ptp(p) > 0
    return {"n": int(len(y)), "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
            "mape": float(rel.mean() * 100), "within_5pct": float((rel <= 0.05).mean() * 100),
            "within_10pct": float((rel <= 0.10).mean() * 100),
            "kendall_tau": float(kendalltau(y, p)[0]) if ranked else float("nan"),
            "spearman": float(spearmanr(y, p)[0]) if ranked else float("nan"),
            "worst_error_pct": float(signed[np.argmax(rel)] * 100) if len(y) else float("nan"),
            "measured_ms": [round(v, 3) for v in y], "predicted_ms": [round(v, 3) for v in p]}


def fidelity(table, params, shape, backend, threads, n: int, seed: int,
             progress: bool = True, space=None, monitor=None) -> dict:
    """Predicted vs measured end to end on `n` held-out architectures of `space`, with
    the table's fitted calibration and, under "old", the plain sum plus one constant on
    the same architectures. Architectures that were calibration models are left out."""
    from tqdm import tqdm
    if seed == CALIBRATION_SEED:
        raise LatencyError(f"seed {CALIBRATION_SEED} is the calibration seed stream; "
                           f"held-out architectures need another --seed")
    models = {"new": LatencyPredictor(table, shape),
              "old": LatencyPredictor(table, shape, calibration="constant")}
    calibration_keys = set(table.meta("calibration_models", []))
    if monitor is not None:
        monitor.settle("the fidelity check")
    measured, predicted, skipped = [], {k: [] for k in models}, 0
    for spec in tqdm(sample_architectures(n, seed, space), desc="measuring held-out models",
                     unit="model", disable=not progress):
        if architecture_key(spec, shape) in calibration_keys:
            skipped += 1
            continue
        for name, predictor in models.items():
            predicted[name].append(predictor.predict(spec).total_ms)
        measured.append(measure_architecture(table, params, shape, spec, backend, threads))
        if monitor is not None:
            monitor.check("measuring a held-out architecture")
    result = fidelity_metrics(measured, predicted["new"])
    old = fidelity_metrics(measured, predicted["old"])
    old.pop("measured_ms")
    result.update({"old": old, "calibration_overlap_skipped": skipped,
                   "calibration": models["new"].calibration.to_dict(),
                   "quant": shape.dtype, "threads": threads,
                   "load": monitor.summary() if monitor is not None else None})
    return result


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
    common.add_argument("--threads", type=int, default=1,
                        help="threads of the interpreter (a table per count; default 1)")
    common.add_argument("--quant", choices=QUANTS, default="float32",
                        help="price the float32 or the full-integer int8 model")
    common.add_argument("--probe-tolerance", type=float, default=None, metavar="FRACTION",
                        help="relative speed-probe difference beyond which a table is not "
                             "reused (default 0.25)")
    common.add_argument("--max-wait", type=float, default=20.0, metavar="S",
                        help="seconds to wait for other processes to go quiet before "
                             "measuring (then measure anyway, with a warning)")
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
                             '"kernels": [3]}\' (any field of mnas_tf.spaces.CellSpace)')
    b = sub.add_parser("build", parents=[common, spaces],
                       help="measure the table for a space")
    b.add_argument("--calibration", type=int, default=12,
                   help="architectures measured end to end to fit the calibration "
                        "(default %(default)s)")
    b.add_argument("--rounds", type=int, default=ROUNDS,
                   help="measurement rounds per op (default %(default)s)")
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
    """`mnas_tf.spaces.get_space(name, **overrides)` from CLI text; ValueError (one line)
    for an unknown name, bad JSON or an unknown setting."""
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
    from mnas_tf.config_files import ConfigError
    from latency.benchmark import _backend_kwargs
    from latency.measure import get_backend
    try:
        if args.threads < 1:
            raise LatencyError("--threads must be >= 1")
        space = parse_space(args.space, args.space_overrides) if "space" in args else None
        if args.command == "build" and (args.rounds < 1 or args.calibration < 1):
            raise LatencyError("--rounds and --calibration must be at least 1")
        spec = load_architecture(args.architecture) if args.command == "predict" else None
        args.op_profiling = False
        backend = get_backend(args.backend, **_backend_kwargs(args))
        table = device_table(backend, args.threads, args.table_dir, args.quant,
                             rebuild=args.command == "build", tolerance=args.probe_tolerance)
        params, shape = load_shape(args.experiment, args.input_size, args.quant)
        if args.command != "predict" and table.meta("replaced"):
            print(f"rebuilding: {table.meta('replaced')['reason']}", file=sys.stderr)
        monitor = load_monitor(backend, args.max_wait)
        if args.command == "build":
            result = build(table, params, shape, backend, args.threads, args.calibration,
                           progress=not args.json, space=space, rounds=args.rounds,
                           monitor=monitor)
        elif args.command == "predict":
            start = time.perf_counter()
            prediction = LatencyPredictor(table, shape, args.missing).predict(spec)
            result = {**prediction.to_dict(), "table": table.path,
                      "table_info": table.describe(), "quant": args.quant,
                      "predict_ms": (time.perf_counter() - start) * 1e3}
        else:
            if args.n < 2:
                raise LatencyError("--n must be at least 2 to compute R^2 and Kendall tau")
            result = fidelity(table, params, shape, backend, args.threads, args.n, args.seed,
                              progress=not args.json, space=space, monitor=monitor)
            result["table_info"] = table.describe()
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
        print(result["table_info"])
        if result["estimated_ops"]:
            print(f"warning: {result['estimated_ops']} op(s) had no entry and were estimated")
    elif command == "fidelity":
        print(result["table_info"])
        for label, m in (("per-class calibration", result),
                         ("sum + one constant (old)", result["old"])):
            print(f"{label:<26} n={m['n']}  R^2 {m['r2']:.4f}  MAPE {m['mape']:.2f}%  "
                  f"within +-5% {m['within_5pct']:.1f}%  within +-10% "
                  f"{m['within_10pct']:.1f}%  Kendall tau {m['kendall_tau']:.3f}  Spearman "
                  f"{m['spearman']:.3f}  worst {m['worst_error_pct']:+.1f}%")
        if result["load"]:
            print(f"load while measuring: {result['load']}")
    else:
        print("\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    raise SystemExit(main())
