"""Durable search state: one SQLite database (WAL) per search.

Every trial a search proposes is a row before it runs, so a kill -9 can lose at most the
work in flight, and `--resume` requeues exactly those rows. Small named states (controller
weights, evolution population, RNG) live beside the trials and are written in the same
transaction as the trial results they belong to, so the two never disagree.

A database remembers the config it was made with and refuses to be resumed by another.

A trial's `role` is "child" (what the strategy proposed: budget, de-duplication, the
strategy, top-k and every default read see only these) or "reference" (a named
architecture such as the published cell, scored beside the children for comparison);
`references()` reads the latter. Stores from before the column get it on open.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sqlite3
import tempfile
import time
from typing import Any, Iterable, Optional

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
STATUSES = (PENDING, RUNNING, DONE, FAILED)
CHILD, REFERENCE = "child", "reference"
ROLES = (CHILD, REFERENCE)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    arch TEXT NOT NULL,
    arch_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    seed INTEGER NOT NULL,
    log_prob REAL,
    policy_version INTEGER,
    map REAL,
    latency_ms REAL,
    madds REAL,
    reward REAL,
    error TEXT,
    metrics TEXT,
    timings TEXT,
    extra TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    role TEXT NOT NULL DEFAULT 'child'
);
CREATE INDEX IF NOT EXISTS trials_hash ON trials (arch_hash, status);
CREATE INDEX IF NOT EXISTS trials_status ON trials (status);
CREATE TABLE IF NOT EXISTS states (
    name TEXT PRIMARY KEY, payload BLOB NOT NULL, meta TEXT NOT NULL, saved REAL NOT NULL);
"""


DB_NAME = "search.sqlite"  # a search's store, in its output directory


class ConfigMismatch(RuntimeError):
    """Resuming a search database with a config other than the one that made it."""


class StoreError(RuntimeError):
    """A store that cannot be opened as asked; the message is one line for the user."""


def connect_readonly(path: str, timeout: float = 5.0) -> sqlite3.Connection:
    """A read-only connection that leaves no -wal/-shm files behind: a store no search
    has open (no -wal file) is read as immutable, a live one through its WAL."""
    live = os.path.exists(path + "-wal")
    return sqlite3.connect(f"file:{path}?mode=ro{'' if live else '&immutable=1'}", uri=True,
                           timeout=timeout)


def check_store(path: str) -> None:
    """Refuses (StoreError) a store that holds no search: empty, not SQLite, damaged, or
    without the config of the search that made it. Reads only: a resume never starts
    over silently, and a store is never overwritten."""
    fix = "restore it from a copy, or give a new --out"
    if os.path.getsize(path) == 0:
        raise StoreError(f"{path} is empty (0 bytes) and holds no search to resume; move it "
                         f"away to start a new search there, or give a new --out")
    try:
        db = connect_readonly(path)
        try:
            status = db.execute("PRAGMA quick_check").fetchone()[0]
            row = db.execute("SELECT value FROM meta WHERE key='config'").fetchone()
            db.execute("SELECT count(*) FROM trials").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path} is not a readable search store ({e}); it may be "
                         f"truncated or damaged: {fix}") from None
    if status != "ok":
        raise StoreError(f"{path} is damaged (SQLite integrity check: {status}): {fix}")
    if row is None:
        raise StoreError(f"{path} holds no search config, so no search made it: {fix}")


def open_store(out_dir: str, config: dict, resume: bool, name: str = DB_NAME) -> "TrialStore":
    """The one way a search driver opens its store in `out_dir`: a new search refuses an
    existing store, a resume refuses a missing or unusable one (`check_store`) and a
    different config (ConfigMismatch), and an output folder that cannot be written is
    named before any work starts."""
    path = os.path.join(out_dir, name)
    if os.path.exists(path) and not resume:
        raise StoreError(f"{path} already exists; pass --resume to continue that search or "
                         f"--out to start a new one elsewhere")
    if resume and not os.path.exists(path):
        legacy = os.path.join(out_dir, "trials.sqlite")
        if os.path.exists(legacy):
            raise StoreError(f"{legacy} is an MSNAS evolution store from before the search "
                             f"framework; this version cannot resume it: start a new --out")
        raise StoreError(f"nothing to resume: {path} does not exist")
    if resume:
        check_store(path)
    try:
        os.makedirs(out_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-check-"):
            pass
    except OSError as e:
        raise StoreError(f"cannot write to the output folder {out_dir} "
                         f"({e.strerror or e}); give an --out you can write") from None
    try:
        return TrialStore(path, config)
    except sqlite3.DatabaseError as e:
        raise StoreError(f"cannot open {path} ({e}); give an --out you can write") from None


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def arch_hash(arch: dict) -> str:
    """A stable architecture id: sha256 of its canonical JSON, 16 hex digits."""
    return hashlib.sha256(canonical_json(arch).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Trial:
    id: int
    arch: dict
    arch_hash: str
    status: str
    seed: int
    log_prob: Optional[float]
    policy_version: Optional[int]
    map: Optional[float]
    latency_ms: Optional[float]
    madds: Optional[float]
    reward: Optional[float]
    error: Optional[str]
    metrics: dict
    timings: dict
    extra: dict
    created: float
    started: Optional[float]
    finished: Optional[float]
    attempts: int
    role: str = CHILD

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Trial":
        values = dict(row)
        values["arch"] = json.loads(values["arch"])
        for key in ("metrics", "timings", "extra"):
            values[key] = json.loads(values[key]) if values[key] else {}
        return cls(**values)


class TrialStore:
    """The trials and named states of one search, in `path` (created if missing)."""

    def __init__(self, path: str, config: dict):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path, self.config = path, config
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._check_config(config)

    def _migrate(self) -> None:
        """Adds the `role` column to a store made before it (every old trial a child)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(trials)")}
        if "role" not in columns:
            with self.transaction():
                self._db.execute(
                    "ALTER TABLE trials ADD COLUMN role TEXT NOT NULL DEFAULT 'child'")

    @classmethod
    def open_existing(cls, path: str) -> "TrialStore":
        """Opens a search database for reading, with the config it was made with
        (StoreError, one line, for a missing or unusable store)."""
        if not os.path.exists(path):
            raise StoreError(f"{path} does not exist")
        check_store(path)
        db = sqlite3.connect(path)
        try:
            row = db.execute("SELECT value FROM meta WHERE key='config'").fetchone()
        finally:
            db.close()
        return cls(path, json.loads(row[0]) if row else {})

    def _check_config(self, config: dict) -> None:
        text = canonical_json(config)
        row = self._db.execute("SELECT value FROM meta WHERE key='config'").fetchone()
        if row is None:
            with self.transaction():
                self._db.execute("INSERT INTO meta VALUES ('config', ?)", (text,))
            return
        if row[0] != text:
            old, new = json.loads(row[0]), json.loads(text)
            if "framework_layout" in new and "framework_layout" not in old:
                raise ConfigMismatch(
                    f"{self.path} was made before the search framework (one config for every "
                    f"search), so this version cannot resume it; start a new --out (its "
                    f"results stay readable with search.retrain or sqlite3)")
            keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ConfigMismatch(
                f"{self.path} was made by a search with a different config (differs in: "
                f"{', '.join(keys)}); resume with the original config, or give a new --out")

    # ----------------------------------------------------------------- transactions
    def transaction(self) -> "_Transaction":
        """`with store.transaction():` groups writes so they land together or not at all."""
        return _Transaction(self._db)

    def close(self) -> None:
        self._db.close()

    # ----------------------------------------------------------------- trials
    def add(self, arch: dict, arch_hash: str, seed: int, *, log_prob: Optional[float] = None,
            policy_version: Optional[int] = None, extra: Optional[dict] = None,
            status: str = PENDING, role: str = CHILD) -> int:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        with self.transaction():
            cursor = self._db.execute(
                "INSERT INTO trials (arch, arch_hash, status, seed, log_prob, policy_version,"
                " extra, created, role) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (canonical_json(arch), arch_hash, status, int(seed), log_prob, policy_version,
                 json.dumps(extra or {}), time.time(), role))
        return int(cursor.lastrowid)

    def start(self, trial_id: int) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE trials SET status=?, started=?, attempts=attempts+1 WHERE id=?",
                (RUNNING, time.time(), trial_id))

    def finish(self, trial_id: int, *, status: str = DONE, map: Optional[float] = None,
               latency_ms: Optional[float] = None, madds: Optional[float] = None,
               reward: Optional[float] = None, error: Optional[str] = None,
               metrics: Optional[dict] = None, timings: Optional[dict] = None,
               extra: Optional[dict] = None) -> None:
        if status not in (DONE, FAILED):
            raise ValueError(f"finish() takes status 'done' or 'failed', got {status!r}")
        with self.transaction():
            if extra is not None:
                old = self._db.execute("SELECT extra FROM trials WHERE id=?",
                                       (trial_id,)).fetchone()
                extra = {**json.loads(old[0] or "{}"), **extra}
            self._db.execute(
                "UPDATE trials SET status=?, map=?, latency_ms=?, madds=?, reward=?, error=?,"
                " metrics=?, timings=?, extra=COALESCE(?, extra), finished=? WHERE id=?",
                (status, map, latency_ms, madds, reward, error, json.dumps(metrics or {}),
                 json.dumps(timings or {}), None if extra is None else json.dumps(extra),
                 time.time(), trial_id))

    def set_extra(self, trial_id: int, extra: dict) -> None:
        """Merges `extra` into a trial's extra (e.g. the retries of a lost child)."""
        with self.transaction():
            old = self._db.execute("SELECT extra FROM trials WHERE id=?", (trial_id,)).fetchone()
            merged = {**json.loads(old[0] or "{}"), **extra}
            self._db.execute("UPDATE trials SET extra=? WHERE id=?",
                             (json.dumps(merged), trial_id))

    def requeue(self, trial_id: int) -> None:
        """One running trial back to pending (its worker died)."""
        with self.transaction():
            self._db.execute("UPDATE trials SET status=?, started=NULL WHERE id=?",
                             (PENDING, trial_id))

    def requeue_running(self) -> list[int]:
        """Trials a killed search left running go back to pending (they run again)."""
        with self.transaction():
            ids = [r[0] for r in self._db.execute(
                "SELECT id FROM trials WHERE status=? ORDER BY id", (RUNNING,))]
            self._db.execute("UPDATE trials SET status=?, started=NULL WHERE status=?",
                             (PENDING, RUNNING))
        return ids

    def trials(self, status: Optional[str | Iterable[str]] = None,
               role: Optional[str] = CHILD) -> list[Trial]:
        """Trials by id, children only unless `role` says otherwise (None: every role)."""
        where, args = [], []
        if status is not None:
            wanted = (status,) if isinstance(status, str) else tuple(status)
            where.append(f"status IN ({','.join('?' * len(wanted))})")
            args.extend(wanted)
        if role is not None:
            where.append("role=?")
            args.append(role)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.execute(f"SELECT * FROM trials{clause} ORDER BY id", args)
        return [Trial.from_row(r) for r in rows]

    def references(self, status: Optional[str | Iterable[str]] = None) -> list[Trial]:
        """The reference trials (named architectures scored beside the children)."""
        return self.trials(status, role=REFERENCE)

    def get(self, trial_id: int) -> Trial:
        row = self._db.execute("SELECT * FROM trials WHERE id=?", (trial_id,)).fetchone()
        if row is None:
            raise KeyError(f"no trial {trial_id} in {self.path}")
        return Trial.from_row(row)

    def find(self, arch_hash: str, status: str = DONE) -> Optional[Trial]:
        """The first child of this architecture with this status (for de-duplication:
        a reference, trained with the search's seed, never stands in for a child)."""
        row = self._db.execute(
            "SELECT * FROM trials WHERE arch_hash=? AND status=? AND role=? ORDER BY id "
            "LIMIT 1", (arch_hash, status, CHILD)).fetchone()
        return Trial.from_row(row) if row else None

    def counts(self, role: str = CHILD) -> dict[str, int]:
        """Trials per status, of one role (children: what the budget counts)."""
        counts = dict.fromkeys(STATUSES, 0)
        for status, n in self._db.execute(
                "SELECT status, COUNT(*) FROM trials WHERE role=? GROUP BY status", (role,)):
            counts[status] = n
        return counts

    # ----------------------------------------------------------------- named states
    def put_state(self, name: str, payload: bytes, meta: Optional[dict] = None) -> None:
        with self.transaction():
            self._db.execute("INSERT OR REPLACE INTO states VALUES (?, ?, ?, ?)",
                             (name, payload, json.dumps(meta or {}), time.time()))

    def get_state(self, name: str) -> Optional[tuple[bytes, dict]]:
        row = self._db.execute("SELECT payload, meta FROM states WHERE name=?",
                               (name,)).fetchone()
        return (bytes(row[0]), json.loads(row[1])) if row else None


class _Transaction:
    """BEGIN IMMEDIATE .. COMMIT, nestable (inner levels join the outer transaction)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db
        self._outer = False

    def __enter__(self):
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._outer = True
        return self

    def __exit__(self, exc_type, *_):
        if self._outer:
            self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def discard_unused(path: str) -> bool:
    """Removes a search database that holds no trial yet (a start that failed before the
    first child), so the corrected rerun is not refused as "already exists"."""
    if not os.path.exists(path):
        return False
    db = sqlite3.connect(path)
    try:
        used = db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.Error:
        return False
    finally:
        db.close()
    if used:
        return False
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)
    return True
