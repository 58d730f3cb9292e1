"""The tuning database (dfpgen.tuning.db): round trips, best and nearest, concurrent writer processes, a writer
killed mid-loop, corrupt and foreign files, and records of another plan format.

No kernels are compiled here: keys are built by hand (TuningKey's fields) so the files are the same on
every host.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import dfpgen.tuning.db as db_mod
from dfpgen.codegen.plan import PLAN_FORMAT, Blocking
from dfpgen.core.numerics import Numerics
from dfpgen.core.spec import ConvSpec
from dfpgen.core.target import named
from dfpgen.passes import get
from dfpgen.tuning.db import RECORD_FORMAT, Record, TuningDB, TuningDBError, TuningKey
from dfpgen.tuning.tune import tuning_key as _tuning_key

KEY = TuningKey((16, 16, 8, 8, 3, 3, 1, 1), "fprop", (16, 16, "nearest", "exact", 1, "avx512_vnni"), 2, 1,
                "testcpu", "avx2,avx512f", "0123456789abcdef")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DFPGEN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def rec(key=KEY, blocking=Blocking(), seconds=1e-3, kind=None, error=None, layer="c", created=1700000000.5):
    return Record(key, blocking, seconds, 0.0 if not math.isfinite(seconds) else 1.0 / seconds, kind, error,
                  created, layer)


def count_rows(path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    finally:
        conn.close()


# ------------------------------------------------------------------------------------ round trips

def test_records_round_trip(tmp_path):
    path = tmp_path / "t.sqlite"
    written = [
        rec(blocking=Blocking(4, 6, 1, 16, 8, "kn"), seconds=1.25e-4, layer="res2a_branch2b"),
        rec(blocking=Blocking(1, 2, 3, None, None, "nk"), seconds=math.inf, kind="plan",
            error="PlanError: register block needs 34 vector registers"),
        rec(blocking=Blocking(2, 4, 1, 8, None), seconds=math.inf, kind="wrong_answer",
            error="ValueError: answer off by up to 0.1"),
        rec(blocking=Blocking(2, 4, 1, 8, None), seconds=math.inf, kind="compile", error="CompileError: x"),
        rec(key=dataclasses.replace(KEY, threads=4, batch=8), seconds=3e-5, layer=""),
    ]
    db = TuningDB(path)
    for r in written:
        db.add(r)
    db.close()
    back = TuningDB(path).records()
    assert back == written                      # every field, oldest first
    assert [r.ok for r in back] == [True, False, False, False, True]
    assert all(math.isinf(r.seconds) for r in back[1:4])
    assert all(isinstance(r.key.shape, tuple) and isinstance(r.key.numerics, tuple) for r in back)
    assert TuningDB(path).records(KEY) == written[:4]


def test_created_is_filled_in_when_missing(tmp_path):
    db = TuningDB(tmp_path / "t.sqlite")
    before = time.time()
    db.add(rec(created=0.0))
    (r,) = db.records()
    assert before - 1 <= r.created <= time.time() + 1


def tuning_key(spec, pass_name, numerics, threads, target, isa):
    return _tuning_key(spec, get(pass_name), numerics, threads, target, isa)


def test_keys_from_tasks_separate_what_changes_the_best_choice():
    target = named("sapphirerapids")
    spec = ConvSpec(2, 16, 16, 8, 8, 3, 3, 1, 1)
    base = tuning_key(spec, "fprop", Numerics(), 1, target, "avx512_vnni")
    assert base == tuning_key(dataclasses.replace(spec, name="other name"), "fprop", Numerics(), 1, target,
                                  "avx512_vnni")
    variants = [
        tuning_key(spec, "bprop", Numerics(), 1, target, "avx512_vnni"),
        tuning_key(spec, "fprop", Numerics(bits_x=12, bits_w=12), 1, target, "avx512_vnni"),
        tuning_key(spec, "fprop", Numerics(), 2, target, "avx512_vnni"),
        tuning_key(dataclasses.replace(spec, N=4), "fprop", Numerics(), 1, target, "avx512_vnni"),
        tuning_key(dataclasses.replace(spec, K=32), "fprop", Numerics(), 1, target, "avx512_vnni"),
        tuning_key(spec, "fprop", Numerics(), 1, target, "avx512"),
        tuning_key(spec, "fprop", Numerics(), 1, named("alderlake"), "avx_vnni"),
    ]
    digests = {base.digest()} | {k.digest() for k in variants}
    assert len(digests) == len(variants) + 1
    # Batch and threads (only) are outside the family used by the nearest fallback.
    assert variants[2].family() == variants[3].family() == base.family()
    assert len({base.family()} | {k.family() for k in variants[:2] + variants[4:]}) == 6
    assert base.plan_format == PLAN_FORMAT


# ----------------------------------------------------------------------------- best and nearest

def chosen(db, record):
    """Add a record and make it the key's choice, as a completed search does."""
    db.add(record)
    db.add_choice(record)


def test_fastest_ignores_failures(tmp_path):
    db = TuningDB(tmp_path / "t.sqlite")
    db.add(rec(blocking=Blocking(1), seconds=5e-4))
    db.add(rec(blocking=Blocking(2), seconds=math.inf, kind="plan", error="PlanError"))
    db.add(rec(blocking=Blocking(3), seconds=1e-6, kind="wrong_answer", error="ValueError"))  # fast but wrong
    db.add(rec(blocking=Blocking(4), seconds=2e-4))
    db.add(rec(blocking=Blocking(5), seconds=math.inf, kind="runtime", error="x"))
    fastest = db.fastest(KEY)
    assert fastest.blocking == Blocking(4) and fastest.seconds == 2e-4 and fastest.ok
    with pytest.raises(TuningDBError, match="failed record"):
        db.add_choice(rec(blocking=Blocking(3), seconds=math.inf, kind="wrong_answer", error="ValueError"))


def test_only_a_confirmed_choice_is_the_best(tmp_path):
    """Records without a choice are an unfinished search's: best() never answers with them, not even the
    fastest, and records added after a choice (an interrupted retune) do not displace it."""
    db = TuningDB(tmp_path / "t.sqlite")
    db.add(rec(blocking=Blocking(1), seconds=5e-4))
    db.add(rec(blocking=Blocking(2), seconds=1e-6))
    assert db.best(KEY) is None and db.best(KEY, nearest=True) is None
    assert db.best(dataclasses.replace(KEY, threads=4), nearest=True) is None
    chosen(db, rec(blocking=Blocking(1), seconds=4e-4))
    assert db.best(KEY).blocking == Blocking(1) and db.best(KEY).seconds == 4e-4
    db.add(rec(blocking=Blocking(3), seconds=1e-9))                  # a faster, unconfirmed record since
    assert db.best(KEY).blocking == Blocking(1)
    assert db.best(dataclasses.replace(KEY, threads=4), nearest=True).blocking == Blocking(1)
    assert db.fastest(KEY).blocking == Blocking(3)
    chosen(db, rec(blocking=Blocking(2), seconds=3e-4))               # a later completed search's choice
    assert db.best(KEY).blocking == Blocking(2)


def test_best_of_a_key_with_only_failures_is_none(tmp_path):
    db = TuningDB(tmp_path / "t.sqlite")
    db.add(rec(seconds=math.inf, kind="compile", error="CompileError"))
    assert db.best(KEY) is None and db.best(KEY, nearest=True) is None and db.fastest(KEY) is None
    assert db.best(dataclasses.replace(KEY, pass_name="bprop")) is None


def test_nearest_picks_the_closest_threads_then_batch(tmp_path):
    db = TuningDB(tmp_path / "t.sqlite")
    tuned = {(1, 2): 1, (2, 8): 2, (4, 2): 3, (1, 16): 4}           # (threads, batch) -> kv, to tell apart
    for (threads, batch), kv in tuned.items():
        key = dataclasses.replace(KEY, threads=threads, batch=batch)
        chosen(db, rec(key, Blocking(kv), 1e-4))
        db.add(rec(key, Blocking(kv + 10), 2e-4))                    # slower: never chosen
        db.add(rec(key, Blocking(kv + 20), math.inf, "plan", "PlanError"))
    db.add(rec(dataclasses.replace(KEY, threads=2, batch=2), Blocking(9), 1e-6))  # closest, but unconfirmed

    def nearest(threads, batch):
        r = db.best(dataclasses.replace(KEY, threads=threads, batch=batch), nearest=True)
        return (r.key.threads, r.key.batch, r.blocking.kv) if r else None

    assert nearest(1, 2) == (1, 2, 1)         # exact
    assert nearest(2, 2) == (2, 8, 2)         # threads first
    assert nearest(3, 2) == (4, 2, 3)         # threads tie (2 vs 4): then the closest batch
    assert nearest(1, 4) == (1, 2, 1)
    assert nearest(1, 12) == (1, 16, 4)
    assert nearest(16, 1) == (4, 2, 3)
    assert db.best(dataclasses.replace(KEY, threads=3), nearest=False) is None
    # Never across layers, passes, numerics or CPUs.
    for other in (dataclasses.replace(KEY, pass_name="bprop"), dataclasses.replace(KEY, shape=(32,) + KEY.shape[1:]),
                  dataclasses.replace(KEY, numerics=(12,) + KEY.numerics[1:]), dataclasses.replace(KEY, cpu="x")):
        assert db.best(other, nearest=True) is None


def test_nearest_falls_back_when_the_exact_key_only_failed(tmp_path):
    db = TuningDB(tmp_path / "t.sqlite")
    chosen(db, rec(dataclasses.replace(KEY, threads=2), Blocking(7), 1e-4))
    db.add(rec(KEY, Blocking(8), math.inf, "wrong_answer", "ValueError"))
    assert db.best(KEY) is None
    assert db.best(KEY, nearest=True).blocking == Blocking(7)


def test_records_of_another_plan_or_record_format_are_ignored(tmp_path):
    path = tmp_path / "t.sqlite"
    db = TuningDB(path)
    old = dataclasses.replace(KEY, plan_format=PLAN_FORMAT - 1)
    newer = dataclasses.replace(KEY, plan_format=PLAN_FORMAT + 1)
    chosen(db, rec(old, Blocking(1), 1e-9))
    chosen(db, rec(newer, Blocking(2), 1e-9))
    chosen(db, rec(KEY, Blocking(3), 1e-3))
    # A row written by a dfpgen with another record format, with the current key.
    db.conn.execute(
        "INSERT INTO records (format, key_digest, key_family, key, layer, blocking, seconds, gmacs, error_kind, "
        "error, created, dfpgen) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (RECORD_FORMAT + 1, KEY.digest(), KEY.family(), KEY.text(), "c", '{"kv": 9, "future": true}', 1e-9, 1.0,
         None, None, 1.0, "99.0"))
    db.close()
    db = TuningDB(path)
    assert count_rows(path) == 4
    assert [r.blocking for r in db.records()] == [Blocking(3)]
    assert db.records(old) == [] and db.best(old) is None
    assert db.best(KEY).blocking == Blocking(3)
    assert db.best(dataclasses.replace(KEY, threads=8), nearest=True).blocking == Blocking(3)


def test_baselines_round_trip(tmp_path):
    db = TuningDB(tmp_path / "t.sqlite")
    assert db.baseline(KEY, "fp32") is None
    db.add_baseline(KEY, "fp32", 2e-3)
    db.add_baseline(KEY, "fp32", 1e-3, "detail")
    assert db.baseline(KEY, "fp32") == (1e-3, "detail")   # the latest
    assert db.baseline(KEY, "torch") is None


# --------------------------------------------------------------------------------- processes

WRITER = textwrap.dedent("""
    import sys
    from dfpgen.tuning.db import Record, TuningDB, TuningKey
    from dfpgen.codegen.plan import Blocking
    key = TuningKey((16, 16, 8, 8, 3, 3, 1, 1), "fprop", (16, 16, "nearest", "exact", 1, "avx512_vnni"), 2, 1,
                    "testcpu", "avx2,avx512f", "0123456789abcdef")
    path, tag, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    db = TuningDB(path)
    print("ready", flush=True)
    sys.stdin.readline()   # start together
    i = 0
    while count < 0 or i < count:
        db.add(Record(key, Blocking(kv=1 + i % 4, wb=tag), 1e-4 * (1 + i % 7), 1.0, None, None,
                      1700000000.0 + i, f"w{tag}-{i}"))
        i += 1
    db.close()
""")


def start_writer(path, tag, count):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(tag), str(count)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def go(*writers):
    for w in writers:
        assert w.stdout.readline().strip() == "ready", w.stderr.read()
    for w in writers:
        w.stdin.write("go\n")
        w.stdin.flush()


def test_two_writer_processes_lose_no_records(tmp_path):
    path = tmp_path / "shared.sqlite"
    TuningDB(path).close()    # created once, as a first tuning run would
    writers = [start_writer(path, tag, 200) for tag in (1, 2)]
    go(*writers)
    for w in writers:
        out, err = w.communicate(timeout=90)
        assert w.returncode == 0, err
    db = TuningDB(path)
    records = db.records()
    assert len(records) == 400
    for tag in (1, 2):
        layers = [r.layer for r in records if r.blocking.wb == tag]
        assert layers == [f"w{tag}-{i}" for i in range(200)]      # each writer's order is kept
    assert db.fastest(KEY).seconds == pytest.approx(1e-4)


def test_writer_killed_mid_loop_leaves_a_readable_database(tmp_path):
    path = tmp_path / "killed.sqlite"
    TuningDB(path).close()
    writer = start_writer(path, 3, -1)   # writes until killed
    try:
        go(writer)
        deadline = time.monotonic() + 60
        while count_rows(path) < 100:
            assert writer.poll() is None, writer.stderr.read()
            assert time.monotonic() < deadline, "the writer wrote nothing"
            time.sleep(0.02)
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    db = TuningDB(path)
    records = db.records()
    assert len(records) >= 100
    assert all(r.ok and r.key == KEY for r in records)
    assert db.fastest(KEY).seconds == pytest.approx(1e-4)
    db.add(rec(blocking=Blocking(kv=9), seconds=1e-6))
    assert len(db.records()) == len(records) + 1
    assert db.fastest(KEY).blocking == Blocking(kv=9)
    db.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_opening_a_fresh_database_while_another_tuner_creates_it(tmp_path, monkeypatch):
    """Deterministic interleaving: after every statement the first opener runs during its initialization,
    a second tuner opens the same file (in a thread, own connection) and adds a record."""
    path = tmp_path / "fresh.sqlite"
    real_connect = sqlite3.connect
    errors, others = [], []
    state = {"first": True, "interleave": False}

    def second_tuner():
        try:
            other = TuningDB(path)
            other.add(rec(blocking=Blocking(kv=2)))
            other.close()
        except Exception as exc:  # noqa: BLE001 - every failure is the finding
            errors.append(f"second tuner: {type(exc).__name__}: {exc}")

    def interleave():
        if state["interleave"]:
            t = threading.Thread(target=second_tuner)
            t.start()
            t.join(0.5)     # a correct opener may hold a lock: let it go on after a while
            others.append(t)

    class Rows:
        def __init__(self, rows):
            self.rows = rows

        def fetchone(self):
            return self.rows[0] if self.rows else None

        def fetchall(self):
            return self.rows

        def __iter__(self):
            return iter(self.rows)

    class Interleaved:
        def __init__(self, conn):
            self._conn = conn

        def execute(self, *args, **kwargs):
            out = Rows(self._conn.execute(*args, **kwargs).fetchall())   # the statement has finished
            interleave()
            return out

        def executescript(self, *args, **kwargs):
            out = self._conn.executescript(*args, **kwargs)
            interleave()
            return out

        def __enter__(self):
            return self._conn.__enter__()

        def __exit__(self, *exc):
            return self._conn.__exit__(*exc)

        def __getattr__(self, name):
            return getattr(self._conn, name)

    def connect(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        if state["first"] and threading.current_thread() is threading.main_thread():
            state["first"] = False
            return Interleaved(conn)
        return conn

    monkeypatch.setattr(db_mod.sqlite3, "connect", connect)
    state["interleave"] = True
    try:
        first = TuningDB(path)
    except Exception as exc:  # noqa: BLE001
        errors.append(f"first tuner: {type(exc).__name__}: {exc}")
        first = None
    state["interleave"] = False
    for t in others:
        t.join(60)
    if first is not None:
        first.add(rec(blocking=Blocking(kv=1)))
        first.close()
    assert others, "the first opener ran no statement"
    assert errors == []
    assert len(TuningDB(path).records()) == len(others) + 1


# ---------------------------------------------------------------------- corrupt and foreign files

def valid_db(path, n=300) -> bytes:
    """A deterministic database of n records, checkpointed into one file; returns its bytes."""
    db = TuningDB(path)
    for i in range(n):
        db.add(rec(blocking=Blocking(kv=1 + i % 3, wb=1 + i % 11), seconds=1e-4 * (1 + i % 13),
                   layer=f"layer{i:04d}", created=1700000000.0 + i))
    db.close()
    assert not os.path.exists(f"{path}-wal") or os.path.getsize(f"{path}-wal") == 0
    return path.read_bytes()


def assert_clear(exc_info, path):
    message = str(exc_info.value)
    assert str(path) in message and "tuning database" in message


def test_random_bytes_raise_tuning_db_error(tmp_path):
    path = tmp_path / "random.sqlite"
    path.write_bytes(random.Random(0).randbytes(20000))
    with pytest.raises(TuningDBError) as exc_info:
        TuningDB(path)
    assert_clear(exc_info, path)
    assert "not a readable dfpgen tuning database" in str(exc_info.value)
    with pytest.raises(TuningDBError):
        TuningDB(path, create=False)


def test_text_file_raises_tuning_db_error(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("these are my notes, not a database\n" * 10)
    with pytest.raises(TuningDBError) as exc_info:
        TuningDB(path)
    assert_clear(exc_info, path)
    assert path.read_text().startswith("these are my notes")   # left untouched


@pytest.mark.parametrize("keep", [16, 99, 4096, 0.5], ids=["16B", "99B", "1page", "half"])
def test_truncated_database_raises_tuning_db_error(tmp_path, keep):
    data = valid_db(tmp_path / "valid.sqlite")
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    path = tmp_path / "truncated.sqlite"
    path.write_bytes(data[:cut])
    with pytest.raises(TuningDBError) as exc_info:
        db = TuningDB(path)
        db.records()
    assert_clear(exc_info, path)


def test_database_truncated_inside_a_page_reads_or_raises_tuning_db_error(tmp_path):
    data = valid_db(tmp_path / "valid.sqlite")
    path = tmp_path / "truncated.sqlite"
    problems = []
    for short in list(range(1, 4096, 99)) + [4096 + 100, 8192 + 100]:
        path.write_bytes(data[:len(data) - short])
        for suffix in ("-wal", "-shm"):
            if os.path.exists(f"{path}{suffix}"):
                os.remove(f"{path}{suffix}")
        try:
            db = TuningDB(path)
            db.records()
            db.best(KEY, nearest=True)
            db.close()
        except TuningDBError:
            pass
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{short} bytes short: {type(exc).__name__}: {exc}")
    assert problems == []


def test_adding_to_a_database_with_corrupt_pages_raises_tuning_db_error(tmp_path):
    data = bytearray(valid_db(tmp_path / "valid.sqlite"))
    data[4096:3 * 4096] = random.Random(1).randbytes(2 * 4096)   # pages 2-3: the records table's tree
    path = tmp_path / "damaged.sqlite"
    path.write_bytes(bytes(data))
    try:
        db = TuningDB(path)
    except TuningDBError:
        return
    with pytest.raises(TuningDBError):
        db.records()
    with pytest.raises(TuningDBError):
        db.add(rec())


def test_foreign_sqlite_file_raises_tuning_db_error(tmp_path):
    path = tmp_path / "photos.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE albums (id INTEGER PRIMARY KEY, title TEXT)")
    conn.execute("INSERT INTO albums (title) VALUES ('holiday')")
    conn.commit()
    conn.close()
    with pytest.raises(TuningDBError) as exc_info:
        TuningDB(path)
    assert_clear(exc_info, path)
    assert "not a dfpgen tuning database" in str(exc_info.value)
    conn = sqlite3.connect(path)     # and it was not modified
    assert conn.execute("SELECT title FROM albums").fetchall() == [("holiday",)]
    assert conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall() == [("albums",)]
    conn.close()


def test_foreign_application_id_raises_tuning_db_error(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id=1234")
    conn.execute("CREATE TABLE records (x)")   # even with a table of the same name
    conn.commit()
    conn.close()
    with pytest.raises(TuningDBError, match="application id"):
        TuningDB(path)


def test_unknown_schema_version_raises_tuning_db_error(tmp_path):
    path = tmp_path / "future.sqlite"
    TuningDB(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={db_mod.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(TuningDBError, match="schema"):
        TuningDB(path)


def test_empty_file_becomes_a_new_database(tmp_path):
    path = tmp_path / "empty.sqlite"
    path.touch()
    db = TuningDB(path)
    db.add(rec())
    assert len(db.records()) == 1


def test_missing_file_with_create_false_reads_as_empty(tmp_path):
    path = tmp_path / "nowhere" / "missing.sqlite"
    db = TuningDB(path, create=False)
    assert db.records() == [] and db.records(KEY) == []
    assert db.best(KEY) is None and db.best(KEY, nearest=True) is None
    assert db.baseline(KEY, "fp32") is None
    db.close()
    assert not path.exists() and not path.parent.exists()


def test_writing_to_a_missing_read_only_database_raises_tuning_db_error(tmp_path):
    db = TuningDB(tmp_path / "missing.sqlite", create=False)
    with pytest.raises(TuningDBError):
        db.add(rec())


def test_default_path_is_in_the_cache_dir(cache):
    assert TuningDB(create=False).path == cache / "tuning.sqlite"
    assert not (cache / "tuning.sqlite").exists()


def test_reading_an_empty_file_writes_nothing_to_it(tmp_path):
    path = tmp_path / "empty.sqlite"
    path.touch()
    db = TuningDB(path, create=False)
    assert db.records() == [] and db.best(KEY) is None and db.baseline(KEY, "fp32") is None
    assert path.stat().st_size == 0
    assert not db.readable
    db.close()


def test_reading_an_sqlite_file_without_tables_writes_no_schema(tmp_path):
    path = tmp_path / "blank.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size=4096")
    conn.execute("VACUUM")       # a valid SQLite file with a header and nothing in it
    conn.close()
    before = path.read_bytes()
    db = TuningDB(path, create=False)
    assert db.records() == []
    db.close()
    assert path.read_bytes() == before
    assert not TuningDB(path, create=False).readable


@pytest.mark.parametrize("under", ["file/t.sqlite", "file/deeper/t.sqlite"])
def test_a_database_under_a_regular_file_raises_tuning_db_error(tmp_path, under):
    (tmp_path / "file").write_text("a regular file\n")
    path = tmp_path / under
    with pytest.raises(TuningDBError) as exc_info:
        TuningDB(path)
    assert str(path) in str(exc_info.value) and "folder" in str(exc_info.value)
    assert TuningDB(path, create=False).records() == []      # reading finds nothing there
    assert (tmp_path / "file").read_text() == "a regular file\n"
