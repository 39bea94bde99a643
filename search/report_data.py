"""What a search report shows, read without touching the search: the store opened
read-only (SQLite `mode=ro`, safe beside a running search in WAL mode), summary.json, the
TensorBoard scalars the driver wrote and the per-trial logs. Nothing is resumed, started,
written or built here.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import sqlite3
import struct
from typing import Optional

from search import store as trial_store

CHILD, REFERENCE = "child", "reference"


class ReportError(RuntimeError):
    """An output folder the report cannot read; the message is one line for the user."""


@dataclasses.dataclass
class SearchRecord:
    """One search as the report sees it."""

    out: str
    config: dict
    trials: list  # store.Trial, every status and role, by id
    roles: dict  # trial id -> "child" | "reference"
    states: dict  # state name -> its meta (JSON)
    summary: dict  # summary.json, {} while the search runs
    scalars: dict  # TensorBoard tag -> [(step, value)]

    def children(self, status: Optional[str] = trial_store.DONE) -> list:
        return [t for t in self.trials if self.roles[t.id] == CHILD
                and (status is None or t.status == status)]

    def references(self) -> list:
        return [t for t in self.trials if self.roles[t.id] == REFERENCE]

    def ranked(self) -> list:
        """Done children with a score, best reward first, one per architecture."""
        seen, out = set(), []
        for t in sorted((t for t in self.children() if t.reward is not None
                         and t.map is not None), key=lambda t: (-t.reward, t.id)):
            if t.arch_hash not in seen:
                seen.add(t.arch_hash)
                out.append(t)
        return out

    def metric(self) -> str:
        """What the `map` column holds (as the driver names it)."""
        best = self.summary.get("best") or {}
        if best.get("metric"):
            return best["metric"]
        evaluator = self.config.get("evaluator")
        if evaluator == "toy":
            return "toy score"
        if evaluator == "supernet":
            return f"one-shot {self.config.get('supernet', {}).get('metric', 'AP50')}"
        return self.config.get("proxy", {}).get("metric", "AP")

    def log_path(self, trial_id: int) -> Optional[str]:
        path = os.path.join(self.out, "logs", f"trial_{trial_id}.log")
        return path if os.path.isfile(path) else None


def load_search(out: str) -> SearchRecord:
    """The search in `out`; ReportError (one line) for a missing folder, no store or a
    damaged one."""
    if not os.path.isdir(out):
        raise ReportError(f"{out} does not exist or is not a folder; give a search's --out")
    path = os.path.join(out, trial_store.DB_NAME)
    if not os.path.exists(path):
        raise ReportError(f"{out} holds no search ({trial_store.DB_NAME} is missing); give "
                          f"the --out of a search")
    try:
        trial_store.check_store(path)
        db = trial_store.connect_readonly(path, timeout=30)
        try:
            db.row_factory = sqlite3.Row
            config = json.loads(db.execute(
                "SELECT value FROM meta WHERE key='config'").fetchone()[0])
            rows = db.execute("SELECT * FROM trials ORDER BY id").fetchall()
            states = {r["name"]: json.loads(r["meta"] or "{}")
                      for r in db.execute("SELECT name, meta FROM states")}
        finally:
            db.close()
    except trial_store.StoreError as e:
        raise ReportError(str(e)) from None
    except (sqlite3.Error, ValueError, TypeError) as e:
        raise ReportError(f"{path} cannot be read as a search store ({e})") from None
    summary = _read_json(os.path.join(out, "summary.json"))
    trials, roles = _trials(rows, summary)
    return SearchRecord(out, config, trials, roles, states, summary,
                        read_scalars(os.path.join(out, "tensorboard")))


def _trials(rows, summary: dict) -> tuple[list, dict]:
    """Trials and their roles; a store without the `role` column holds children only,
    except the trials summary.json names as references."""
    fields = {f.name for f in dataclasses.fields(trial_store.Trial)}
    named = {r.get("trial") for r in summary.get("references") or [] if isinstance(r, dict)}
    trials, roles = [], {}
    for row in rows:
        values = dict(row)
        trial = trial_store.Trial.from_row({k: v for k, v in values.items() if k in fields})
        role = values.get("role") or (REFERENCE if trial.id in named or
                                      "reference" in trial.extra else CHILD)
        trials.append(trial)
        roles[trial.id] = role
    return trials, roles


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # none yet (a running search), or being rewritten


def read_scalars(folder: str) -> dict:
    """TensorBoard scalars of the event files in `folder`: tag -> [(step, value)], read
    as raw TFRecords with TensorBoard's protos (no TensorFlow import); a record still
    being written ends the read of its file."""
    try:
        from tensorboard.compat.proto import event_pb2
    except ImportError:
        return {}
    import numpy as np
    out: dict = {}
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            data = f.read()
        at = 0
        while at + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            record = data[at + 12:at + 12 + length]
            if len(record) < length:
                break
            at += 12 + length + 4
            try:
                event = event_pb2.Event.FromString(record)
            except Exception:  # pylint: disable=broad-except  (a torn record: stop)
                break
            for value in event.summary.value:
                number = _number(value, np)
                if number is not None:
                    out.setdefault(value.tag, []).append((event.step, number))
    return {tag: sorted(points) for tag, points in out.items()}


def _number(value, np) -> Optional[float]:
    if value.HasField("simple_value"):
        return float(value.simple_value)
    tensor = value.tensor
    if tensor.float_val:
        return float(tensor.float_val[0])
    if tensor.double_val:
        return float(tensor.double_val[0])
    if tensor.tensor_content and tensor.dtype in (1, 2):  # DT_FLOAT, DT_DOUBLE
        return float(np.frombuffer(tensor.tensor_content,
                                   np.float32 if tensor.dtype == 1 else np.float64)[0])
    return None
