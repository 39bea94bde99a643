"""The latency look-up table (storage) and the predictor that prices architectures from it.

A table maps op keys (`latency.graph.OpKey`: what the runtime executes after the
converter's fusions) to their measured median latency on one device fingerprint
(CPU or phone, threads, delegate, runtime), in one SQLite file per fingerprint. A
prediction walks the architecture's *connectivity* (`latency.ops.head_units`: used
blocks only, shared pools once, residual adds only where they fire), sums the entries of
every op, removes the per-invoke overhead that each single-op measurement carries, and
applies the table's calibration (`latency.calibration`: per-op-class factors and an
intercept fitted on whole models; tables without one use the plain sum plus a constant).
Each entry is the fastest of several measurement rounds (the `rounds` table keeps them
all). A table also records the device's speed probe (`latency.probe`) when it was built,
and refuses to open on a device that probes differently.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import time
from typing import Any, Iterable, Optional, Sequence

from latency.calibration import CLASSES, Calibration, op_class
from latency.errors import LatencyError
from latency.graph import OpKey, parse_key
from latency.ops import (DetectorShape, detector_ops, head_cells, level_sizes, predictor_ops,
                         unit_ops)
from latency.walk import head_cost

# What makes two measurements comparable (host and android fingerprints); volatile fields
# such as the adb serial or the OS release are left out so a table is reused.
STABLE_FINGERPRINT_KEYS = ("backend", "cpu_model", "machine", "threads", "delegate", "runtime",
                           "model", "soc", "abi", "build", "cpu_mask", "big_core_max_khz",
                           "governor", "binary_version", "quant", "table_format")
TABLE_FORMAT = 2  # entries are the fastest of several rounds; tables carry a speed probe


def table_dir() -> str:
    return os.environ.get("MNAS_TF_LATENCY_DIR",
                          os.path.join(os.path.expanduser("~"), ".cache", "mnas_tf", "latency"))


def stable_fingerprint(fingerprint: dict) -> dict:
    """The fields of a device fingerprint that make two measurements comparable."""
    stable = {k: fingerprint[k] for k in STABLE_FINGERPRINT_KEYS if k in fingerprint}
    stable["table_format"] = TABLE_FORMAT
    return stable


def table_path(fingerprint: dict, root: Optional[str] = None) -> str:
    """Where the table of this device fingerprint lives (one file per fingerprint)."""
    stable = stable_fingerprint(fingerprint)
    digest = hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]
    name = f"{stable.get('backend', 'device')}-{digest}.sqlite"
    return os.path.join(root or table_dir(), name)


class MissingEntries(LatencyError):
    """Ops a prediction needs that the table lacks."""

    def __init__(self, keys: Sequence[str], estimating: bool = False):
        self.keys = list(keys)
        fallback = ("; --missing estimate has nothing to scale from (the backbone and at "
                    "least one op of each type must be measured)" if estimating
                    else ", or predict with `--missing estimate`")
        super().__init__(f"the latency table has no entry for {len(keys)} op(s), e.g. "
                         f"{keys[0]}; run `python -m latency.lut build --space NAME` for the "
                         f"architecture's space and input size{fallback}")


class TableMismatch(LatencyError):
    """A table whose recorded speed probe differs from this device's."""


class LatencyTable:
    """Op-key -> measured latency for one device fingerprint, stored in SQLite (WAL)."""

    def __init__(self, path: str, fingerprint: Optional[dict] = None, readonly: bool = False):
        self.path = path
        if readonly:  # e.g. a report: nothing written, no -wal/-shm left behind
            live = os.path.exists(path + "-wal")  # a build has it open: read through the WAL
            self._db = sqlite3.connect(f"file:{path}?mode=ro{'' if live else '&immutable=1'}",
                                       uri=True)
            self._entries = dict(self._db.execute("SELECT key, median_us FROM entries"))
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._db = sqlite3.connect(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);"
            "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, median_us REAL, "
            "mean_us REAL, std_us REAL, runs INTEGER, measured_at REAL);"
            "CREATE TABLE IF NOT EXISTS models (key TEXT PRIMARY KEY, median_ms REAL, "
            "measured_at REAL);"
            "CREATE TABLE IF NOT EXISTS rounds (key TEXT, round INTEGER, median_us REAL, "
            "min_us REAL, runs INTEGER, other_cores REAL, measured_at REAL, "
            "PRIMARY KEY (key, round));")
        if fingerprint is not None:
            stored = self.meta("fingerprint")
            if stored is not None and stored != fingerprint:
                raise LatencyError(f"{path} was built for another device ({stored}); use a "
                                   f"fresh path or let `for_device` pick one")
            self.set_meta("fingerprint", fingerprint)
        self._entries = {k: v for k, v in self._db.execute(
            "SELECT key, median_us FROM entries")}

    @classmethod
    def for_device(cls, fingerprint: dict, root: Optional[str] = None,
                   probe_us: Optional[float] = None, tolerance: Optional[float] = None,
                   rebuild: bool = False) -> "LatencyTable":
        """The table of this device fingerprint (one file per fingerprint, reused).

        With `probe_us` (this device's speed probe now), a table whose recorded probe
        differs beyond `tolerance` is not reused: with `rebuild` it is moved aside
        (`*.stale-TIME`) and a fresh one is started; otherwise TableMismatch says so."""
        from latency.probe import DEFAULT_TOLERANCE, probe_mismatch
        stable, path = stable_fingerprint(fingerprint), table_path(fingerprint, root)
        table = cls(path, stable)
        if probe_us is None:
            return table
        stored = table.meta("speed_probe_us")
        tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
        if stored is None or len(table) == 0:
            table.set_meta("speed_probe_us", probe_us)
        elif probe_mismatch(stored, probe_us, tolerance):
            message = (f"{table.path} was built on a device that ran the speed probe in "
                       f"{stored:.0f} us; this one takes {probe_us:.0f} us "
                       f"({probe_us / stored:.2f}x, tolerance {tolerance:.0%})")
            if not rebuild:
                raise TableMismatch(f"{message}: not reusing it; rebuild with `python -m "
                                    f"latency.lut build --rebuild` (or quiet the machine)")
            table.close()
            stale = f"{table.path}.stale-{int(time.time())}"
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(table.path + suffix):
                    os.replace(table.path + suffix, stale + suffix)
            table = cls(path, stable)
            table.set_meta("speed_probe_us", probe_us)
            table.set_meta("replaced", {"stale": stale, "reason": message})
        return table

    def close(self) -> None:
        self._db.close()

    def describe(self) -> str:
        """One line: which table, for what, and when it was built."""
        built = self.meta("built_at")
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(built)) if built else \
            "not finished"
        fp = self.meta("fingerprint", {})
        what = ", ".join(str(fp[k]) for k in ("cpu_model", "model", "threads", "quant")
                         if fp.get(k) is not None)
        return f"table {self.path} ({what}; built {when})"

    # -- storage --------------------------------------------------------------------------
    def meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def __contains__(self, key) -> bool:
        return str(key) in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key) -> Optional[float]:
        return self._entries.get(str(key))

    def put(self, rows: Iterable[tuple[str, float, float, float, int]]) -> None:
        """Rows of (key, median_us, mean_us, std_us, runs), committed together."""
        rows = list(rows)
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)",
                                 [(*r, time.time()) for r in rows])
        self._entries.update({r[0]: r[1] for r in rows})

    def put_rounds(self, rows: Iterable[tuple[str, int, float, float, int, float]]) -> None:
        """Rows of (key, round, median_us, min_us, runs, other_cores), committed together."""
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO rounds VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 [(*r, time.time()) for r in rows])

    def rounds(self) -> dict[str, list[float]]:
        """{key: per-round medians (us)} of every key measured in rounds."""
        out: dict[str, list[float]] = {}
        for key, value in self._db.execute("SELECT key, median_us FROM rounds ORDER BY round"):
            out.setdefault(key, []).append(value)
        return out

    def missing(self, keys: Iterable) -> list:
        return [k for k in keys if str(k) not in self._entries]

    def model_latency(self, key: str) -> Optional[float]:
        row = self._db.execute("SELECT median_ms FROM models WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def put_model_latency(self, key: str, median_ms: float) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?)",
                             (key, median_ms, time.time()))

    @property
    def invoke_overhead_us(self) -> float:
        return float(self.meta("invoke_overhead_us", 0.0))

    @property
    def constant_us(self) -> float:
        return float(self.meta("constant_us", 0.0))


@dataclasses.dataclass
class Prediction:
    total_ms: float
    parts_ms: dict[str, float]
    estimated_ops: int = 0  # ops priced by the fallback instead of a table entry

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class LatencyPredictor:
    """Prices architectures from a table; every head unit is priced once and cached.

    `missing='error'` raises MissingEntries; `missing='estimate'` prices an absent op from
    the table's entries of the same op type, scaled by output size, and counts it.
    `calibration`: the table's fitted model ("fitted", the default; the plain sum plus
    the constant where the table has none), "constant" (the sum plus one constant, the
    model before per-class factors) or a `Calibration`. Each entry is scaled by its op
    class's factor once, so a prediction stays one sum of cached unit costs.
    """

    def __init__(self, table: LatencyTable, shape: DetectorShape, missing: str = "error",
                 calibration="fitted", fast: bool = True):
        if missing not in ("error", "estimate"):
            raise ValueError("missing must be 'error' or 'estimate'")
        self.table, self.shape, self.missing, self.fast = table, shape, missing, fast
        self.calibration = table_calibration(table, calibration)
        self._factor = {c: self.calibration.factor(c) for c in CLASSES}
        self._overhead = table.invoke_overhead_us
        self._unit_cost: dict[tuple, tuple[float, int]] = {}
        self._predictor_cost: dict[tuple, tuple[float, int]] = {}
        self._sizes: dict[int, dict] = {}
        self._rates: Optional[dict] = None
        backbone = table.get(shape.backbone_key())
        if backbone is None:
            raise MissingEntries([str(shape.backbone_key())], estimating=missing == "estimate")
        self._backbone_us = (backbone - self._overhead) * self._factor["backbone"]
        self._constant_us = self.calibration.intercept_us

    def _price(self, ops: Sequence[OpKey]) -> tuple[float, int]:
        total, estimated, absent = 0.0, 0, []
        for op in ops:
            value = self.table.get(op)
            if value is None:
                if self.missing == "error":
                    absent.append(str(op))
                    continue
                value, estimated = self._estimate(op), estimated + 1
            total += (value - self._overhead) * self._factor[op_class(op)]
        if absent:
            raise MissingEntries(absent)
        return total, estimated

    def _estimate(self, op: OpKey) -> float:
        """Same-op-type entries' median latency per output element, times this op's."""
        import math
        if self._rates is None:
            rates: dict[str, list[float]] = {}
            for key, value in self.table._entries.items():  # pylint: disable=protected-access
                parsed = parse_key(key)
                if parsed.output:
                    rates.setdefault(parsed.op, []).append(
                        max(value - self._overhead, 0.0) / math.prod(parsed.output))
            self._rates = {k: sorted(v)[len(v) // 2] for k, v in rates.items()}
        if op.op not in self._rates:
            raise MissingEntries([str(op)], estimating=True)
        return self._overhead + self._rates[op.op] * math.prod(op.output)

    def sizes(self, max_level: int) -> dict:
        if max_level not in self._sizes:
            self._sizes[max_level] = level_sizes(self.shape, max_level)
        return self._sizes[max_level]

    def _cost(self, unit: tuple, max_level: int) -> tuple[float, int]:
        cost = self._unit_cost.get(unit)
        if cost is None:
            cost = self._unit_cost[unit] = self._price(unit_ops(unit, self.sizes(max_level),
                                                                self.shape.dtype))
        return cost

    def predict(self, spec) -> Prediction:
        """`fast` (the default) walks MnasFPN-family heads with `latency.walk`; without it
        (and for NAS-FPN) every cell's units come from `head_cells`."""
        if self.fast and spec.family != "nasfpn":
            max_level = spec.max_level
            head, estimated = head_cost(spec, self.shape, self._unit_cost,
                                        lambda unit: self._cost(unit, max_level))
        else:
            head, estimated = 0.0, 0
            for units, times in head_cells(spec, self.shape):
                for unit in units:
                    cost = self._cost(unit, spec.max_level)
                    head += cost[0] * times
                    estimated += cost[1] * times
        pkey = (spec.channels, spec.levels)
        if pkey not in self._predictor_cost:
            self._predictor_cost[pkey] = self._price(predictor_ops(spec, self.shape))
        predictor, p_est = self._predictor_cost[pkey]
        parts = {"backbone": self._backbone_us / 1e3, "head": head / 1e3,
                 "predictor": predictor / 1e3, "overhead": self._constant_us / 1e3}
        return Prediction(total_ms=sum(parts.values()), parts_ms=parts,
                          estimated_ops=estimated + p_est)

    def class_sums(self, spec) -> list[float]:
        """The architecture's entries (less the invoke overhead) summed per op class
        (ordered as `calibration.CLASSES`): what the calibration is fitted on."""
        sums = dict.fromkeys(CLASSES, 0.0)
        for part in detector_ops(spec, self.shape).values():
            for op in part:
                value = self.table.get(op)
                if value is None:
                    raise MissingEntries([str(op)])
                sums[op_class(op)] += value - self._overhead
        return [sums[c] for c in CLASSES]


def table_calibration(table: LatencyTable, which="fitted") -> Calibration:
    """The calibration a predictor applies (see `LatencyPredictor`)."""
    if isinstance(which, Calibration):
        return which
    if which not in ("fitted", "constant"):
        raise ValueError("calibration must be 'fitted', 'constant' or a Calibration")
    stored = table.meta("calibration") if which == "fitted" else None
    return Calibration.from_dict(stored) if stored else Calibration.constant(table.constant_us)
