"""The tuning database: append-only, versioned records in SQLite, safe under concurrent tuners and kills.

One row per measured candidate, keyed by exactly what changes the best choice: layer shape, pass,
numerics, thread count, CPU name and features, the template hash and the plan format. A failed
candidate is a row too (error kind, no time). SQLite's journal makes every insert atomic, so a tuner
killed mid-write leaves a readable file and two tuners writing at once lose nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from dfpgen.codegen.plan import PLAN_FORMAT, Blocking
from dfpgen.config import settings
from dfpgen.core.numerics import Numerics
from dfpgen.core.spec import ConvSpec
from dfpgen.core.target import Target
from dfpgen.errors import DFPGenError
from dfpgen.version import __version__

APPLICATION_ID = 0x44465047  # "DFPG": marks a file as a dfpgen tuning database
SCHEMA_VERSION = 1
RECORD_FORMAT = 1


class TuningDBError(DFPGenError, RuntimeError):
    """The tuning database file is corrupt, foreign, or of an unknown schema version."""


class TuningDBWarning(UserWarning):
    """The user's tuning database is unreadable, so kernels ignore it and take their default blockings."""


@dataclass(frozen=True)
class TuningKey:
    """What the best blocking depends on."""

    shape: tuple              # (C, K, H, W, R, S, stride, pad): the layer without its batch
    pass_name: str
    numerics: tuple
    batch: int
    threads: int
    cpu: str
    features: str
    template: str
    plan_format: int = PLAN_FORMAT

    @classmethod
    def make(cls, spec: ConvSpec, pass_name: str, numerics: Numerics, threads: int, target: Target,
             isa: str, template: str) -> "TuningKey":
        """The key of one (layer, pass, numerics, threads, CPU, ISA) tuning task; `template` is the hash
        of the pass's template source."""
        return cls(spec.shape_key()[1:], pass_name, numerics.key() + (isa,), spec.N, threads, target.cpu,
                   target.key()[1], template)

    def text(self) -> str:
        """Canonical JSON of the key."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def digest(self) -> str:
        """A short hash of the key, indexed in the database."""
        return hashlib.sha256(self.text().encode()).hexdigest()[:32]

    def family(self) -> str:
        """Digest of the key without batch and thread count (for the nearest-match fallback)."""
        data = dataclasses.asdict(self)
        data.pop("threads")
        data.pop("batch")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Record:
    """One measured candidate (seconds is inf and error_kind set when it failed)."""

    key: TuningKey
    blocking: Blocking
    seconds: float
    gmacs: float
    error_kind: str | None = None
    error: str | None = None
    created: float = 0.0
    layer: str = ""

    @property
    def ok(self) -> bool:
        """Whether the candidate ran and gave the right answer."""
        return self.error_kind is None and math.isfinite(self.seconds)


def default_path() -> Path:
    """The database in the user cache directory."""
    return settings().cache_dir / "tuning.sqlite"


class TuningDB:
    """An open tuning database."""

    def __init__(self, path: str | Path | None = None, create: bool = True):
        self.path = Path(path) if path is not None else default_path()
        self.conn = None
        # Opened only to read (create=False), a missing or empty file is an empty database and is left
        # as it is: reading never writes a schema.
        if not create and (not self.path.exists() or self.path.stat().st_size == 0):
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            blocking = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
            reason = f"{blocking} is a file, not a folder" if blocking else exc.strerror or str(exc)
            raise TuningDBError(f"{self.path}: cannot make the tuning database's folder ({reason}); pass another "
                                f"--db or set DFPGEN_CACHE_DIR") from None
        try:
            self.conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._prepare(create)
        except sqlite3.DatabaseError as exc:
            raise TuningDBError(f"{self.path}: not a readable dfpgen tuning database ({exc}); "
                                f"move it away or pass another --db") from None

    @property
    def readable(self) -> bool:
        """Whether there is a tuning database to read (False: a missing or empty file opened only to read)."""
        return self.conn is not None

    def _prepare(self, create: bool = True) -> None:
        conn = self.conn
        # Check and create in one write transaction: two tuners opening a new file at once must not
        # see each other's half-made schema.
        conn.execute("BEGIN IMMEDIATE")
        try:
            app = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if app == 0 and not tables and create:
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("""CREATE TABLE records (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    format INTEGER NOT NULL, key_digest TEXT NOT NULL, key_family TEXT NOT NULL,
                    key TEXT NOT NULL, layer TEXT, blocking TEXT NOT NULL, seconds REAL, gmacs REAL,
                    error_kind TEXT, error TEXT, created REAL NOT NULL, dfpgen TEXT NOT NULL)""")
                conn.execute("CREATE INDEX records_key ON records (key_digest)")
                conn.execute("CREATE INDEX records_family ON records (key_family)")
                conn.execute("""CREATE TABLE baselines (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, key_digest TEXT NOT NULL, name TEXT NOT NULL,
                    seconds REAL, detail TEXT, created REAL NOT NULL)""")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if app == 0 and not tables:
            if not create:   # an SQLite file with nothing in it, opened only to read: an empty database
                conn.close()
                self.conn = None
            return  # new: SQLite's default rollback journal (no WAL, whose switch needs the file alone)
        if app != APPLICATION_ID:
            raise TuningDBError(f"{self.path}: not a dfpgen tuning database (application id {app:#x})")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise TuningDBError(f"{self.path}: tuning database schema {version}, this dfpgen reads "
                                f"{SCHEMA_VERSION}; pass another --db")

    def _execute(self, sql: str, args: tuple = ()) -> list:
        """Run one statement and fetch its rows; every SQLite failure becomes a TuningDBError."""
        if self.conn is None:
            raise TuningDBError(f"{self.path}: no tuning database here (opened read-only, nothing to write to)")
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise TuningDBError(f"{self.path}: the tuning database is damaged ({exc}); move it away or pass "
                                f"another --db") from None

    def add(self, record: Record) -> None:
        """Append one record (atomic)."""
        seconds = record.seconds if math.isfinite(record.seconds) else None
        self._execute(
            "INSERT INTO records (format, key_digest, key_family, key, layer, blocking, seconds, gmacs, "
            "error_kind, error, created, dfpgen) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (RECORD_FORMAT, record.key.digest(), record.key.family(), record.key.text(), record.layer,
             json.dumps(dataclasses.asdict(record.blocking)), seconds, record.gmacs, record.error_kind,
             record.error, record.created or time.time(), __version__))

    def _rows(self, where: str = "", args: tuple = ()) -> list[Record]:
        return [r for _, r in self._rows_with_ids(where, args)]

    def _rows_with_ids(self, where: str = "", args: tuple = ()) -> list[tuple[int, Record]]:
        if self.conn is None:
            return []
        rows = self._execute(
            f"SELECT id, key, blocking, seconds, gmacs, error_kind, error, created, layer FROM records "
            f"WHERE format = ? {where} ORDER BY id", (RECORD_FORMAT, *args))
        out = []
        for row_id, key, blocking, seconds, gmacs, kind, error, created, layer in rows:
            try:
                k = json.loads(key)
                k["shape"], k["numerics"] = tuple(k["shape"]), tuple(k["numerics"])
                if k.get("plan_format") != PLAN_FORMAT:
                    continue  # records of an older planner describe other code
                out.append((row_id, Record(TuningKey(**k), Blocking(**json.loads(blocking)),
                                           math.inf if seconds is None else seconds, gmacs or 0.0, kind, error,
                                           created, layer)))
            except (ValueError, TypeError, KeyError) as exc:
                raise TuningDBError(f"{self.path}: a record is damaged ({type(exc).__name__}: {exc}); move the "
                                    f"database away or pass another --db") from None
        return out

    def records(self, key: TuningKey | None = None) -> list[Record]:
        """Every record (of one key), oldest first."""
        return self._rows("AND key_digest = ?", (key.digest(),)) if key else self._rows()

    def best(self, key: TuningKey, nearest: bool = False) -> Record | None:
        """The tuner's confirmed choice for a key (`add_choice`), or None until a search of it has completed;
        with `nearest`, when the key has none, the choice of the tuned (threads, batch) closest to the key's
        among the same layer, pass, numerics and CPU.

        Records without a choice (a search killed before its confirmation rounds, or records added since)
        never answer: a single unconfirmed measurement can rank a blocking ahead of the default."""
        found = self._chosen(key)
        if found is None and nearest:
            tuned = {r.key for r in self._rows("AND key_family = ?", (key.family(),)) if r.ok} - {key}
            closest = lambda k: (abs(k.threads - key.threads), abs(k.batch - key.batch), -k.threads, -k.batch)
            for other in sorted(tuned, key=closest):
                found = self._chosen(other)
                if found is not None:
                    break
        return found

    def _chosen(self, key: TuningKey) -> Record | None:
        """The record the latest choice of a key names, or None."""
        choice = self.baseline(key, "choice")
        if choice is None:
            return None
        try:
            chosen_id = int(json.loads(choice[1])["record"])
        except (ValueError, TypeError, KeyError) as exc:
            raise TuningDBError(f"{self.path}: a choice is damaged ({type(exc).__name__}: {exc}); move the "
                                f"database away or pass another --db") from None
        rows = self._rows("AND key_digest = ? AND id = ?", (key.digest(), chosen_id))
        return rows[0] if rows and rows[0].ok else None

    def fastest(self, key: TuningKey) -> Record | None:
        """The fastest correct record of a key, confirmed or not (what `dfpgen db show` lists for an unfinished
        search; never what a kernel uses)."""
        found = [r for r in self.records(key) if r.ok]
        return min(found, key=lambda r: r.seconds) if found else None

    def add_choice(self, record: Record) -> None:
        """Record the tuner's choice for a key, which marks its search complete: the latest stored record of
        `record`'s blocking."""
        if not record.ok:
            raise TuningDBError(f"{self.path}: add_choice of a failed record ({record.blocking.describe()})")
        row = self._execute("SELECT id FROM records WHERE key_digest = ? AND blocking = ? ORDER BY id DESC LIMIT 1",
                            (record.key.digest(), json.dumps(dataclasses.asdict(record.blocking))))
        if not row:
            raise TuningDBError(f"{self.path}: add_choice of a blocking with no record ({record.blocking.describe()})")
        self.add_baseline(record.key, "choice", record.seconds, json.dumps({"record": row[0][0]}))

    def add_baseline(self, key: TuningKey, name: str, seconds: float, detail: str | None = None) -> None:
        """Record a comparison time for a task (the default blocking, our FP32 kernel, PyTorch)."""
        self._execute("INSERT INTO baselines (key_digest, name, seconds, detail, created) VALUES (?,?,?,?,?)",
                      (key.digest(), name, seconds, detail, time.time()))

    def baseline(self, key: TuningKey, name: str) -> tuple[float, str | None] | None:
        """The latest comparison (seconds, detail) of a task, or None."""
        if self.conn is None:
            return None
        row = self._execute("SELECT seconds, detail FROM baselines WHERE key_digest = ? AND name = ? "
                            "ORDER BY id DESC LIMIT 1", (key.digest(), name))
        return (row[0][0], row[0][1]) if row else None

    def close(self) -> None:
        """Close the connection."""
        if self.conn is not None:
            try:
                self.conn.close()
            except sqlite3.DatabaseError:
                pass  # nothing is pending: every insert committed on its own
