"""What a child costs, on top of what it scores: latency (the look-up table or an
end-to-end measurement on the search's backend) and the shipped detector's MAdds.

The reward that trades score against latency is `search.rewards`; the hard Select window
is `search.constraints`.
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence


def latency_predictor(config, cell_space, progress: bool,
                      extra_specs: Sequence = ()) -> Callable[[dict], float]:
    """arch dict -> predicted ms, from the device's table. The table is built for the
    configured space first unless it already holds every op key of that space at this
    input size and its constant was calibrated on it (an exact, measurement-free check);
    a table built for other spaces only gets the keys it lacks measured. The ops of
    `extra_specs` (reference architectures outside the space) are measured where the
    table lacks them, under the space's calibration."""
    from latency.lut import build, device_table, load_shape, measure_ops, table_ready
    from latency.ops import detector_ops
    from latency.measure import get_backend
    from latency.table import LatencyPredictor
    from mnas_tf.arch import MnasFPNSpec
    cfg = config.latency
    params, shape = load_shape(cfg.experiment, (cfg.input_size, cfg.input_size), cfg.quant)
    kwargs = {"serial": cfg.serial, "benchmark_binary": cfg.benchmark_binary} \
        if cfg.backend == "android" else {}
    backend = get_backend(cfg.backend, **kwargs)
    # a table whose speed probe no longer matches this device is rebuilt, never reused
    table = device_table(backend, cfg.threads, cfg.table_dir, cfg.quant, rebuild=True)
    if not table_ready(table, shape, cell_space):
        if progress:
            print(f"[search] building the {cfg.backend} latency table for space "
                  f"{config.space!r} at {cfg.input_size}x{cfg.input_size} (once per device "
                  f"and space; resumable): {table.path}", file=sys.stderr)
        build(table, params, shape, backend, cfg.threads, progress=progress, space=cell_space)
    extra = table.missing([key for spec in extra_specs
                           for part in detector_ops(spec, shape).values() for key in part])
    if extra:
        if progress:
            print(f"[search] measuring {len(extra)} op(s) of the reference architectures "
                  f"that the latency table lacks", file=sys.stderr)
        measure_ops(table, extra, backend, cfg.threads, progress=progress)
    predictor = LatencyPredictor(table, shape)
    return lambda arch: predictor.predict(MnasFPNSpec.from_dict(arch)).total_ms


class LatencyMeter:
    """End-to-end median latency (ms) of a spec's TFLite detector on the search's latency
    backend (the backend is opened once)."""

    def __init__(self, config):
        self.config = config
        self._backend = None

    def measure(self, spec) -> float:
        from latency.lut import _measure_bytes, detector_flatbuffer, load_shape
        from latency.measure import get_backend
        cfg = self.config.latency
        if self._backend is None:
            kwargs = {"serial": cfg.serial, "benchmark_binary": cfg.benchmark_binary} \
                if cfg.backend == "android" else {}
            self._backend = get_backend(cfg.backend, **kwargs)
        params, _ = load_shape(cfg.experiment, (cfg.input_size, cfg.input_size))
        flatbuffer = detector_flatbuffer(params, spec)
        return _measure_bytes(self._backend, flatbuffer, cfg.threads, 10, 50).median_ms


def resolve_target(config, latency_of=None) -> dict:
    """The reward's target in ms on this search's device: `reward.target_ms`, or the
    reference architecture's latency (from the table, `latency_of(arch dict)`, or measured
    end to end) times `reward.target.ratio`. Returns {target_ms, how} (how: one line)."""
    r = config.reward
    if r.target is None:
        return {"target_ms": r.target_ms, "how": f"{r.target_ms:g} ms (reward.target_ms)"}
    from mnas_tf.arch import load_architecture
    from mnas_tf.spaces import canonical_dict
    name, ratio = r.target["reference"], float(r.target.get("ratio", 1.0))
    spec = load_architecture(name)
    if latency_of is not None:
        ms, source = float(latency_of(canonical_dict(spec))), "latency table"
    else:
        ms, source = float(LatencyMeter(config).measure(spec)), "measured end to end"
    cfg = config.latency
    return {"target_ms": ratio * ms, "reference": name, "ratio": ratio, "reference_ms": ms,
            "how": f"{ratio * ms:.4g} ms = {ratio:g} x {name} ({ms:.4g} ms, {source}, "
                   f"{cfg.backend}, {cfg.threads} thread(s), {cfg.input_size}x"
                   f"{cfg.input_size} {cfg.quant})"}


def detector_madds(config, spec) -> float:
    """MAdds of the whole MnasFPN detector at the latency input size (what ships)."""
    from mnas_tf.describe import describe
    size = config.latency.input_size
    override = {"task": {"model": {"decoder": {"mnasfpn": {
        "architecture": spec.to_json()}}}}}
    return float(describe(config.latency.experiment, (size, size), [override])["madds"])
