"""An architecture's predicted latency split into backbone / head / predictor (the MnasFPN
paper's Fig. 5), from a latency table that already exists.

Read-only: no speed probe, no measurement, no build, so a search report can show the
split beside a running search. The table is found by this host's fingerprint; a phone's
table (which needs the phone to fingerprint) is used when it is the only one of its
thread count and quantization in the table folder.
"""

from __future__ import annotations

import glob
import os
import sqlite3
from typing import Optional, Sequence

from latency.errors import LatencyError


def find_table(backend: str, threads: int, quant: str,
               root: Optional[str] = None) -> tuple[Optional[str], str]:
    """(path of the existing table for these settings, or None; why, in a few words)."""
    from latency.table import table_dir, table_path
    root = root or table_dir()
    if backend == "host":
        from latency.host import HostBackend
        path = table_path({**HostBackend().fingerprint(threads), "quant": quant}, root)
        if os.path.exists(path):
            return path, f"this host's table {path}"
        return None, f"no latency table for this host at {threads} thread(s), {quant} in {root}"
    found = [p for p in sorted(glob.glob(os.path.join(root, f"{backend}-*.sqlite")))
             if _matches(p, threads, quant)]
    if len(found) == 1:
        return found[0], f"the only {backend} table at {threads} thread(s), {quant}: {found[0]}"
    return None, (f"{len(found)} {backend} tables at {threads} thread(s), {quant} in {root}; "
                  f"the split needs exactly one" if found else
                  f"no {backend} latency table at {threads} thread(s), {quant} in {root}")


def _matches(path: str, threads: int, quant: str) -> bool:
    from latency.table import LatencyTable
    try:
        table = LatencyTable(path, readonly=True)
        try:
            fingerprint = table.meta("fingerprint", {})
        finally:
            table.close()
    except sqlite3.Error:
        return False
    return fingerprint.get("threads") == threads and fingerprint.get("quant", "float32") == quant


def latency_breakdown(path: str, shape, specs: Sequence) -> dict:
    """{"table": its description, "splits": one per spec (MnasFPNSpec) of {"parts_ms":
    {backbone, head, predictor, overhead}, "total_ms"} or {"error": why}} at `shape`
    (`latency.ops.DetectorShape`) from the table at `path`; LatencyError when the table
    cannot be read or lacks the backbone."""
    from latency.table import LatencyPredictor, LatencyTable
    try:
        table = LatencyTable(path, readonly=True)
    except sqlite3.Error as e:
        raise LatencyError(f"{path} is not a readable latency table ({e})") from None
    try:
        predictor = LatencyPredictor(table, shape)
        splits = []
        for spec in specs:
            try:
                prediction = predictor.predict(spec)
                splits.append({"parts_ms": prediction.parts_ms,
                               "total_ms": prediction.total_ms})
            except LatencyError as e:
                splits.append({"error": str(e)})
        return {"table": table.describe(), "splits": splits}
    finally:
        table.close()
