"""What visitors say a drawing really was: the corrections store, and the owner's tools.

    the page (Right, or the truth typed) -> Store.save -> SQLite in WAL mode
    -> `python corrections.py review` (accepted or rejected) -> train.py --corrections (accepted)
                                                            -> `export` (a Hugging Face dataset)

The store is one SQLite file (stdlib `sqlite3`), at CORRECTIONS_DB or data/corrections.sqlite3.
Its table `corrections` keeps one row per drawing: the PNG that was read, the reading shown
(JSON), the visitor's label, its review status and the sha256 of the weights that read it.
Nothing about the visitor is kept. A store made by another tool with only the seven columns
of issue 23 is valid input: writing migrates it (`PRAGMA user_version`), reading never does.

    python corrections.py stats | review | export OUT | delete ID... | snapshot OUT [--db PATH]
"""

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # imported when backups start: it costs the CLI a third of a second
    from huggingface_hub import CommitScheduler

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "corrections.sqlite3"
OFF = "off"  # CORRECTIONS_DB=off: no store, and the page hides its controls
DEFAULT_MAX_MB = 1000  # 1 GB: about 200,000 answers at a canvas PNG of a few KB each
BUSY_TIMEOUT_S = 5.0  # how long a write waits for another program's lock (a VACUUM...)
MAX_DIGITS = 8  # reading.MAX_DIGITS: the longest number the app reads (not imported: torch)
NOT_A_DIGIT = "not a digit"  # the label of a drawing that is no digit
MAX_LABEL_CHARS = 64  # longer text is no label: refused before it is even split
LABEL_PATTERN = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}|{NOT_A_DIGIT}")  # of a normalised label
LABEL_RULE = f'an answer is a digit, a number of up to {MAX_DIGITS} digits, or "{NOT_A_DIGIT}"'
STATUSES = ("new", "accepted", "rejected")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HASH_CHUNK = 1 << 20  # bytes read at a time when hashing a weights file

# Rate limits for the page (the app keeps one RateLimit of each). A person who draws a digit
# and types what it is needs two seconds or more per answer, so 30 a minute never stops one;
# 600 a minute across all pages (a new page costs nothing to open) bounds what a script can
# add: about 3 MB a minute, a day to fill the store, where the size cap stops it.
ANSWERS_PER_PAGE_PER_MINUTE = 30
ANSWERS_PER_MINUTE = 600

# The schema. Version 1 is the seven columns (their names are a contract: other tools
# read and write them) plus ours, added with defaults so that a foreign store migrates in place.
SCHEMA_VERSION = 1
CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,            -- ISO 8601 UTC, when the answer stored was given
    picture BLOB NOT NULL,               -- the PNG that was read
    reading TEXT NOT NULL,               -- the reading shown, as JSON
    label TEXT NOT NULL,                 -- what the visitor says: "7", "407" or "not a digit"
    status TEXT NOT NULL DEFAULT 'new',  -- new, accepted or rejected
    model TEXT NOT NULL                  -- sha256 of the weights file that read it
)"""
REQUIRED_COLUMNS = ("id", "created_at", "picture", "reading", "label", "status", "model")
ADDED_COLUMNS = {
    # the page's random id for the drawing: one answer per drawing (NULL in a foreign row)
    "drawing": "TEXT",
    # the page's answer counter: a later answer replaces an earlier one, never the reverse
    "sequence": "INTEGER NOT NULL DEFAULT 0",
}
CREATE_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS corrections_drawing ON corrections (drawing)",
    "CREATE INDEX IF NOT EXISTS corrections_status ON corrections (status)",
)

# What a visitor reads when an answer is not kept (the str of a CorrectionsError).
OFF_PREFIX = "Corrections are off"
NOT_SAVED = "Your answer could not be saved"
FULL = "Corrections are full: thank you, but there is no room for more answers"
NOT_UPDATED = "The store could not be changed"


class CorrectionsError(Exception):
    """An answer not kept, or a store that cannot be used: str() is a short message for
    people ("Corrections are off: ...", "Corrections are full...", "Your answer could not
    be saved: ...")."""


def size_limit(environ: Mapping[str, str] = os.environ) -> int:
    """The store's size limit, bytes, from CORRECTIONS_MAX_MB (megabytes, 10**6 bytes;
    default DEFAULT_MAX_MB): past it, no more answers. CorrectionsError for anything else."""
    text = environ.get("CORRECTIONS_MAX_MB", str(DEFAULT_MAX_MB))
    try:
        size = int(float(text) * 1_000_000)
    except (ValueError, OverflowError):  # not a number, nan, inf
        size = 0
    if size <= 0:
        raise CorrectionsError(
            f"{OFF_PREFIX}: CORRECTIONS_MAX_MB is a size in megabytes, like 500, not {text!r}."
        )
    return size


def store_path(environ: Mapping[str, str] = os.environ) -> Path | None:
    """Where the store is: CORRECTIONS_DB (relative to the current folder), None when it is
    "off", DEFAULT_PATH when it is unset or empty."""
    value = environ.get("CORRECTIONS_DB", "").strip()
    if not value:
        return DEFAULT_PATH
    if value.lower() == OFF:
        return None
    return Path(value).expanduser().absolute()


def valid_label(text: str) -> str | None:
    """A visitor's answer as it is stored ("7", "0407", "not a digit"), or None when it is no
    answer. Whitespace around it and case are forgiven: " Not  a digit " -> "not a digit"."""
    if not isinstance(text, str) or len(text) > MAX_LABEL_CHARS:
        return None
    clean = " ".join(text.split()).lower()
    return clean if LABEL_PATTERN.fullmatch(clean) else None


def model_sha256(path: Path) -> str:
    """The sha256 of a weights file, in hex: the `model` column. OSError if it can't be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_as_label(reading: dict) -> str | None:
    """What the model read, as a visitor's label would say it: "7", "407", "not a digit", or
    None when it read nothing (an empty canvas, an unreadable picture)."""
    if reading.get("status") == "not_a_digit":
        return NOT_A_DIGIT
    if reading.get("status") in ("digit", "number") and isinstance(reading.get("text"), str):
        return reading["text"]
    return None


@dataclass(frozen=True)
class Row:
    """One correction, as the tools and train.py read it."""

    id: int
    created_at: str  # ISO 8601 UTC
    picture: bytes  # PNG (empty when a query left pictures out)
    reading: dict  # the reading shown ({} when a foreign row's is not JSON)
    label: str  # "7", "407" or "not a digit"
    status: str  # new, accepted or rejected
    model: str  # sha256 of the weights that read it

    @property
    def read(self) -> str | None:
        """What the model read, as a label: see read_as_label."""
        return read_as_label(self.reading)

    @property
    def agrees(self) -> bool:
        """Whether the visitor confirmed the reading (the label is what the model read)."""
        return self.label == self.read


class RateLimit:
    """At most `limit` events a `window_s` seconds for each key, over a sliding window (the
    last `window_s` seconds, not a calendar minute). Thread-safe. Refused events don't count."""

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    def allow(self, key: str) -> bool:
        """Whether one more event for `key` fits now; if it does, it is counted."""
        now = time.monotonic()
        with self._lock:
            self._forget_idle_keys(now)
            times = self._times.setdefault(key, deque())
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) >= self.limit:
                return False
            times.append(now)
            return True

    def _forget_idle_keys(self, now: float) -> None:
        """Once a window, drop the keys with nothing left in it: a page closed long ago
        costs no memory on a server that runs for weeks."""
        if now - self._swept < self.window_s:
            return
        self._swept = now
        idle = [key for key, times in self._times.items() if times[-1] <= now - self.window_s]
        for key in idle:
            del self._times[key]


class Store:
    """The corrections store, for the app and the tools that write. Open it with Store.open.

    Every call opens its own connection and closes it before returning, so threads share no
    sqlite3 object (the Gradio server calls from several at once), and one mechanism orders
    every writer, in this process or another (the CLI during a review): SQLite's lock, taken
    at BEGIN IMMEDIATE and waited for up to `timeout_s` (busy_timeout). In WAL mode readers
    never wait for it. A connection costs a fraction of a millisecond; an answer is a click.

    One more connection, the keeper, stays open and idle from open() to close(). SQLite
    copies the WAL into the database and deletes it when its last connection closes: without
    the keeper, every answer would (three more fsyncs and a new WAL file: 23 ms an answer
    instead of 7 on our test disk). With it, that happens every 1000 pages (SQLite's
    default checkpoint) and at close().
    """

    def __init__(self, path: Path, max_bytes: int, timeout_s: float) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._keeper: sqlite3.Connection | None = None

    @classmethod
    def open(
        cls, path: Path, max_bytes: int | None = None, timeout_s: float = BUSY_TIMEOUT_S
    ) -> "Store":
        """Open the store at `path`, creating its folder and the file when missing, and
        migrate its schema. CorrectionsError ("Corrections are off: ...") for a folder that
        can't be made or written, a file that is not a SQLite database (or one from a newer
        version), a lock that doesn't clear within `timeout_s` seconds, a full disk."""
        path = Path(path).absolute()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CorrectionsError(f"{OFF_PREFIX}: its folder can't be made ({e.strerror}).") from e
        store = cls(path, size_limit() if max_bytes is None else max_bytes, timeout_s)
        keeper = None
        try:
            keeper = store._connect(check_same_thread=False)  # closed by any thread
            # WAL: readers (the tools, a snapshot) never block the page's writes. It is
            # stored in the file, so it is set once here for every later connection.
            keeper.execute("PRAGMA journal_mode = WAL")
            _migrate(keeper)
        except (sqlite3.Error, CorrectionsError) as e:
            if keeper is not None:
                keeper.close()
            if isinstance(e, CorrectionsError):
                raise
            raise _error(OFF_PREFIX, e, timeout_s) from e
        store._keeper = keeper
        return store

    def close(self) -> None:
        """Close the keeper connection: the WAL is copied into the database file."""
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None

    def save(
        self, drawing: str, picture: bytes, reading: dict, label: str, model: str, sequence: int
    ) -> int:
        """Keep a visitor's answer for a drawing; return its row id. One row per drawing: an
        answer with a `sequence` at least the stored one's replaces it (label, reading, time;
        the status goes back to new), an older one changes nothing, so the last answer sent
        wins even when answers are saved out of order. The answer is on disk when this
        returns. CorrectionsError ("Corrections are full...", "Your answer could not be
        saved: ...") when the store is past `max_bytes` or the disk is full, when the label
        is no answer (see valid_label), the picture not a PNG, or SQLite fails (lock, I/O)."""
        clean = valid_label(label)
        if clean is None:
            raise CorrectionsError(f"{NOT_SAVED}: {LABEL_RULE}.")
        if not drawing or not isinstance(drawing, str):
            raise CorrectionsError(f"{NOT_SAVED}: the drawing has no id.")
        if not bytes(picture[:8]) == PNG_SIGNATURE:
            raise CorrectionsError(f"{NOT_SAVED}: the picture is not a PNG.")
        try:
            reading_json = json.dumps(reading, separators=(",", ":"))
        except (TypeError, ValueError) as e:
            raise CorrectionsError(f"{NOT_SAVED}: the reading is not JSON.") from e
        answer = (_now(), bytes(picture), reading_json, clean, model, int(sequence))
        with self._write(NOT_SAVED) as connection:
            self._check_room(connection)
            found = connection.execute(
                "SELECT id, sequence FROM corrections WHERE drawing = ?", (drawing,)
            ).fetchone()
            if found is None:
                return connection.execute(
                    "INSERT INTO corrections"
                    " (created_at, picture, reading, label, model, sequence, drawing, status)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'new')",
                    (*answer, drawing),
                ).lastrowid
            row_id, stored_sequence = found
            if int(sequence) >= stored_sequence:
                connection.execute(
                    "UPDATE corrections SET created_at = ?, picture = ?, reading = ?, label = ?,"
                    " model = ?, sequence = ?, status = 'new' WHERE id = ?",
                    (*answer, row_id),
                )
            return row_id

    def answer_for(self, drawing: str) -> str | None:
        """The label kept for the drawing, None when it has no answer yet (a second answer
        replaces the first, and the app's rate limits count new answers only).
        CorrectionsError if SQLite fails."""
        with self._read(NOT_SAVED) as connection:
            found = connection.execute(
                "SELECT label FROM corrections WHERE drawing = ?", (drawing,)
            ).fetchone()
        return None if found is None else found[0]

    def rows(self, status: str | None = None, pictures: bool = True) -> list[Row]:
        """The corrections with that status (all of them for None), oldest first, with their
        pictures (or with b"" for each: a review of a 1 GB store needs them one at a time).
        CorrectionsError if SQLite fails."""
        with self._read(NOT_UPDATED) as connection:
            return list(_rows(connection, status, pictures))

    def picture(self, row_id: int) -> bytes:
        """A correction's picture; b"" when there is no such row."""
        with self._read(NOT_UPDATED) as connection:
            found = connection.execute(
                "SELECT picture FROM corrections WHERE id = ?", (row_id,)
            ).fetchone()
        return bytes(found[0] or b"") if found else b""

    def accepted(self) -> list[Row]:
        """The accepted corrections, oldest first: all the fine-tune learns from (nothing
        unreviewed is trained on)."""
        return self.rows("accepted")

    def decide(self, row_id: int, status: str, label: str) -> bool:
        """Set a correction's status to accepted or rejected, if it is still new with the
        label the owner saw (a visitor may have replaced the answer since). Whether it was
        set. ValueError for another status; CorrectionsError if SQLite fails."""
        if status not in STATUSES[1:]:
            raise ValueError(f"A review decides 'accepted' or 'rejected', not {status!r}.")
        with self._write(NOT_UPDATED) as connection:
            changed = connection.execute(
                "UPDATE corrections SET status = ? WHERE id = ? AND status = 'new' AND label = ?",
                (status, row_id, label),
            ).rowcount
        return changed == 1

    def accept_agreeing(self) -> int:
        """Accept every new correction whose label is what the model read; how many."""
        with self._write(NOT_UPDATED) as connection:
            agreeing = [row for row in _rows(connection, "new", pictures=False) if row.agrees]
            return _accept(connection, agreeing)

    def accept_label(self, label: str) -> int:
        """Accept every new correction with that label; how many. ValueError for no label."""
        clean = valid_label(label)
        if clean is None:
            raise ValueError(f"{label!r} is no label: {LABEL_RULE}.")
        with self._write(NOT_UPDATED) as connection:
            matching = [r for r in _rows(connection, "new", pictures=False) if r.label == clean]
            return _accept(connection, matching)

    def delete(self, ids: Iterable[int]) -> list[int]:
        """Delete these corrections; the ids that were there (then call vacuum)."""
        deleted = []
        with self._write(NOT_UPDATED) as connection:
            for row_id in ids:
                if connection.execute("DELETE FROM corrections WHERE id = ?", (row_id,)).rowcount:
                    deleted.append(row_id)
        return deleted

    def delete_rejected(self) -> list[int]:
        """Delete every rejected correction; their ids (then call vacuum)."""
        with self._write(NOT_UPDATED) as connection:
            found = connection.execute("SELECT id FROM corrections WHERE status = 'rejected'")
            ids = [row_id for (row_id,) in found]
            connection.execute("DELETE FROM corrections WHERE status = 'rejected'")
        return ids

    def vacuum(self) -> None:
        """Rewrite the file without the free pages, and empty the WAL: what was deleted is
        gone from the disk (not from snapshots and backups made before)."""
        try:
            with closing(self._connect()) as connection:
                connection.execute("VACUUM")
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as e:
            raise _error(NOT_UPDATED, e, self.timeout_s) from e

    def size_bytes(self) -> int:
        """The database's size: its pages, including those still in the WAL."""
        with self._read(NOT_UPDATED) as connection:
            return _size_bytes(connection)

    def _connect(self, check_same_thread: bool = True) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=self.timeout_s,
            isolation_level=None,  # no implicit transactions: BEGIN IMMEDIATE where we write
            check_same_thread=check_same_thread,
        )
        try:
            # FULL: in WAL mode each commit also fsyncs the WAL, so an acknowledged answer
            # survives a power cut or a crashed machine. NORMAL would already survive SIGKILL
            # (a commit is in the WAL file, in the OS's cache, before it returns; only the OS
            # dying loses it); FULL costs one fsync an answer: nothing at 10 answers a second.
            connection.execute("PRAGMA synchronous = FULL")
            # The size limit, made hard: a write that would pass it fails as SQLITE_FULL (the
            # check before each write says "full" sooner; this stops one large write too).
            page_size = connection.execute("PRAGMA page_size").fetchone()[0]
            connection.execute(f"PRAGMA max_page_count = {max(1, self.max_bytes // page_size)}")
        except sqlite3.Error:
            connection.close()
            raise
        return connection

    @contextmanager
    def _write(self, failure: str) -> Iterator[sqlite3.Connection]:
        """A write transaction: BEGIN IMMEDIATE takes the write lock first (waiting for it up
        to timeout_s), so a transaction never fails half way for a lock. Committed when the
        block ends; rolled back (the connection closed without commit) on any error."""
        try:
            with closing(self._connect()) as connection:
                connection.execute("BEGIN IMMEDIATE")
                yield connection
                connection.execute("COMMIT")
        except sqlite3.Error as e:
            raise _error(failure, e, self.timeout_s) from e

    @contextmanager
    def _read(self, failure: str) -> Iterator[sqlite3.Connection]:
        try:
            with closing(self._connect()) as connection:
                yield connection
        except sqlite3.Error as e:
            raise _error(failure, e, self.timeout_s) from e

    def _check_room(self, connection: sqlite3.Connection) -> None:
        if _size_bytes(connection) >= self.max_bytes:
            raise CorrectionsError(f"{FULL}.")


def _migrate(connection: sqlite3.Connection) -> None:
    """Bring the schema to SCHEMA_VERSION: create the table, or complete a foreign one (the
    issue's columns, no user_version) with our columns and indexes. Idempotent; a store of
    this version is only read. CorrectionsError for a newer version or missing columns."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise CorrectionsError(
            f"{OFF_PREFIX}: the store is from a newer version of this app "
            f"(schema {version}; this one knows {SCHEMA_VERSION})."
        )
    if version == SCHEMA_VERSION:
        return
    connection.execute("BEGIN IMMEDIATE")
    connection.execute(CREATE_TABLE)
    columns = _columns(connection)
    _check_columns(columns, OFF_PREFIX)
    for name, declaration in ADDED_COLUMNS.items():
        if name not in columns:
            connection.execute(f"ALTER TABLE corrections ADD COLUMN {name} {declaration}")
    for statement in CREATE_INDEXES:
        connection.execute(statement)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    connection.execute("COMMIT")


def _columns(connection: sqlite3.Connection) -> set[str]:
    return {row[1] for row in connection.execute("PRAGMA table_info(corrections)")}


def _check_columns(columns: set[str], prefix: str) -> None:
    if not columns:
        raise CorrectionsError(f"{prefix}: the file has no table 'corrections'.")
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise CorrectionsError(
            f"{prefix}: the table 'corrections' lacks the columns {', '.join(missing)}."
        )


def _rows(
    connection: sqlite3.Connection, status: str | None = None, pictures: bool = True
) -> Iterator[Row]:
    """The rows, oldest first, from the issue's columns only (so any valid store reads)."""
    picture = "picture" if pictures else "x''"
    where, parameters = ("WHERE status = ?", (status,)) if status else ("", ())
    query = (
        f"SELECT id, created_at, {picture}, reading, label, status, model"
        f" FROM corrections {where} ORDER BY id"
    )
    for row_id, created_at, png, reading, label, row_status, model in connection.execute(
        query, parameters
    ):
        # A foreign tool may have stored another type or NULL where we store text.
        yield Row(
            row_id,
            str(created_at),
            bytes(png or b""),
            _parse(reading),
            str(label),
            str(row_status or "new"),
            str(model or ""),
        )


def _parse(reading: str) -> dict:
    try:
        value = json.loads(reading)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _accept(connection: sqlite3.Connection, rows: list[Row]) -> int:
    for row in rows:
        connection.execute("UPDATE corrections SET status = 'accepted' WHERE id = ?", (row.id,))
    return len(rows)


def _size_bytes(connection: sqlite3.Connection) -> int:
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    return pages * connection.execute("PRAGMA page_size").fetchone()[0]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _error(prefix: str, error: sqlite3.Error, timeout_s: float) -> CorrectionsError:
    """A SQLite error as a message for people (no path: a visitor may read it)."""
    text = str(error)
    if "full" in text:  # "database or disk is full": the disk, or the size limit
        return CorrectionsError(f"{FULL}.")
    if "locked" in text or "busy" in text:
        reason = f"the store is busy (another program has held its lock over {timeout_s:g} s)"
    elif "not a database" in text:
        reason = "the store's file is not a SQLite database"
    elif "readonly" in text or "unable to open" in text:
        reason = "the store's file or folder can't be written"
    elif "I/O" in text:
        reason = "the disk failed to read or write"
    else:
        reason = text
    return CorrectionsError(f"{prefix}: {reason}.")


# ---- Reading a store without changing it (stats, export, snapshot) ----


def open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to an existing store (`mode=ro`: nothing is created or
    migrated). CorrectionsError when it is missing, not a database, or has no valid table."""
    path = Path(path).absolute()
    if not path.is_file():
        raise CorrectionsError(f"No store at {path} (a command that only reads creates none).")
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        _check_columns(_columns(connection), f"{path} is not a corrections store")
    except (sqlite3.Error, CorrectionsError) as e:
        connection.close()
        if isinstance(e, CorrectionsError):
            raise
        raise _error(f"{path} can't be read", e, BUSY_TIMEOUT_S) from e
    return connection


def read_rows(path: Path, status: str | None = None, pictures: bool = True) -> list[Row]:
    """The store's rows with that status (all for None), oldest first, read without changing
    the store (no file created, nothing migrated). CorrectionsError, with what is wrong, for
    a missing file, one that is not a corrections store, or a failed read."""
    with closing(open_read_only(path)) as connection:
        try:
            return list(_rows(connection, status, pictures))
        except sqlite3.Error as e:
            raise _error(f"{Path(path).absolute()} can't be read", e, BUSY_TIMEOUT_S) from e


CONFUSION_ROWS = tuple("0123456789") + (NOT_A_DIGIT,)
CONFUSION_COLUMNS = CONFUSION_ROWS + ("other",)
COLUMN_NAMES = {NOT_A_DIGIT: "nd", "other": "oth"}  # short headers, explained under the table


def summary(rows: Iterable[Row]) -> dict:
    """The figures of `stats` for these rows: counts by status and by label; live accuracy
    (the share of answers, rejected ones left out, that confirm the reading); the single
    digits as a confusion table {label: {read: count}} ("other": a number or nothing read);
    and the numbers' answers and confirmations."""
    by_status, by_label = Counter(), Counter()
    confusion: dict[str, Counter] = {name: Counter() for name in CONFUSION_ROWS}
    answers = confirmed = numbers = numbers_confirmed = 0
    for row in rows:
        by_status[row.status] += 1
        by_label[row.label] += 1
        if row.status == "rejected":  # the owner judged the answer false: it says nothing
            continue
        answers += 1
        confirmed += row.agrees
        if row.label in confusion:
            confusion[row.label][row.read if row.read in CONFUSION_ROWS else "other"] += 1
        else:
            numbers += 1
            numbers_confirmed += row.agrees
    return {
        "answers": sum(by_status.values()),
        "by_status": {status: by_status[status] for status in STATUSES if by_status[status]},
        "by_label": dict(sorted(by_label.items(), key=lambda item: _label_order(item[0]))),
        "judged": answers,
        "confirmed": confirmed,
        "accuracy": round(confirmed / answers, 4) if answers else None,
        "confusion": {label: dict(read) for label, read in confusion.items() if read},
        "numbers": {"answers": numbers, "confirmed": numbers_confirmed},
    }


def _label_order(label: str) -> tuple[int, int, str]:
    """Digits first, by length then value ("7" < "07" < "407"), then "not a digit"."""
    return (1, 0, label) if label == NOT_A_DIGIT else (0, len(label), label)


def stats(path: Path) -> dict:
    """The figures of `stats`, for all answers and for each model: {"store", "all", "models":
    {sha256: figures}}. CorrectionsError as for open_read_only."""
    rows = read_rows(path, pictures=False)
    models = sorted({row.model for row in rows})
    return {
        "store": str(Path(path).absolute()),
        "all": summary(rows),
        "models": {model: summary(r for r in rows if r.model == model) for model in models},
    }


def format_stats(figures: dict) -> str:
    """The stats as text for a terminal."""
    lines = [f"{figures['store']} (read-only): {figures['all']['answers']} answers"]
    if len(figures["models"]) > 1:
        lines += ["", "All models:", *_format_summary(figures["all"])]
    for model, summary_ in figures["models"].items():
        lines += ["", f"Model {model[:12]}:", *_format_summary(summary_)]
    return "\n".join(lines)


def _format_summary(figures: dict) -> list[str]:
    status = ", ".join(f"{name} {count}" for name, count in figures["by_status"].items())
    labels = ", ".join(f"{label}: {count}" for label, count in figures["by_label"].items())
    lines = [f"  answers: {figures['answers']} ({status})", f"  by label: {labels}"]
    if figures["accuracy"] is None:
        return lines + ["  live accuracy: no answers but rejected ones"]
    lines.append(
        f"  live accuracy: {figures['accuracy']:.1%} ({figures['confirmed']} of "
        f"{figures['judged']} readings confirmed by visitors; rejected answers left out)"
    )
    if figures["confusion"]:
        lines += _format_confusion(figures["confusion"])
    numbers = figures["numbers"]
    if numbers["answers"]:
        lines.append(f"  numbers: {numbers['answers']} answered, {numbers['confirmed']} read right")
    return lines


def _format_confusion(confusion: dict[str, dict[str, int]]) -> list[str]:
    """Rows: what the visitor said (the labels answered); columns: what the model read."""
    header = "".join(f"{COLUMN_NAMES.get(name, name):>4}" for name in CONFUSION_COLUMNS)
    lines = [
        "  single digits (rows: what visitors said; columns: what the model read):",
        f"  {'':>11}{header}",
    ]
    for label in (name for name in CONFUSION_ROWS if name in confusion):
        counts = confusion[label]
        cells = "".join(f"{counts.get(name, 0) or '.':>4}" for name in CONFUSION_COLUMNS)
        lines.append(f"  {label:>11}{cells}")
    lines.append('  (nd: "not a digit"; oth: a number, or nothing read)')
    return lines


# ---- Export, snapshot, backups ----


def export(path: Path, out: Path, status: str = "accepted") -> int:
    """Write the corrections with that status ("all" for every one) as a Hugging Face
    `imagefolder` dataset: OUT/<id>.png and OUT/metadata.jsonl (file_name, label as text,
    id, status, model, read, created_at). Atomic: written into a temporary folder beside
    OUT, then renamed to OUT. How many were written. CorrectionsError when OUT is not an
    empty folder, when there is nothing to export, and as for open_read_only."""
    out = Path(out).absolute()
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise CorrectionsError(f"{out} exists and is not an empty folder: nothing written.")
    with closing(open_read_only(path)) as connection:
        out.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            count = _write_dataset(connection, None if status == "all" else status, temporary)
            if count == 0:
                raise CorrectionsError(f"There are no {status} corrections: nothing written.")
            os.rename(temporary, out)  # replaces an empty folder; fails on a full one
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
    return count


def _write_dataset(connection: sqlite3.Connection, status: str | None, folder: Path) -> int:
    count = 0
    with open(folder / "metadata.jsonl", "w", encoding="utf-8") as metadata:
        for row in _rows(connection, status):
            if not row.picture.startswith(PNG_SIGNATURE):
                print(f"Skipped correction {row.id}: its picture is not a PNG.", file=sys.stderr)
                continue
            name = f"{row.id}.png"
            (folder / name).write_bytes(row.picture)
            record = {
                "file_name": name,
                "label": row.label,  # text: "07" keeps its 0
                "id": row.id,
                "status": row.status,
                "model": row.model,
                "read": row.read,  # what the model read, null when nothing
                "created_at": row.created_at,
            }
            metadata.write(json.dumps(record) + "\n")
            count += 1
    return count


def snapshot(path: Path, out: Path) -> None:
    """A consistent copy of the store at OUT (SQLite's backup API, so a store being written
    copies whole), in rollback-journal mode so that it is one self-contained file, checked
    with `PRAGMA integrity_check`, then renamed to OUT (atomic; an older OUT is replaced).
    CorrectionsError when the copy fails its check, OUT is the store itself, and as for
    open_read_only."""
    out = Path(out).absolute()
    if out.exists() and Path(path).exists() and out.samefile(path):
        raise CorrectionsError(f"{out} is the store itself: a snapshot goes elsewhere.")
    temporary = _write_snapshot(path, out.parent)
    os.replace(temporary, out)


def refresh_snapshot(path: Path, out: Path) -> bool:
    """Make a snapshot at OUT if the store changed since the one there: whether it did
    (False too when there is no store yet). CorrectionsError as for snapshot."""
    if not Path(path).is_file():
        return False
    out = Path(out).absolute()
    temporary = _write_snapshot(path, out.parent)
    if out.is_file() and _same_bytes(temporary, out):
        temporary.unlink()
        return False
    os.replace(temporary, out)
    return True


def _write_snapshot(path: Path, folder: Path) -> Path:
    """A checked snapshot in a temporary file in `folder` (made if missing; the file is
    removed on failure)."""
    with closing(open_read_only(path)) as source:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(prefix=".snapshot.", suffix=".tmp", dir=folder)
        os.close(descriptor)
        temporary = Path(name)
        try:
            with closing(sqlite3.connect(temporary, isolation_level=None)) as copy:
                source.backup(copy)
                copy.execute("PRAGMA journal_mode = DELETE")
                check = copy.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                raise CorrectionsError(f"The snapshot failed its integrity check: {check[:3]}.")
            with open(temporary, "rb+") as file:
                os.fsync(file.fileno())
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    return temporary


def _same_bytes(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()


BACKUP_EVERY_MINUTES = 15  # at most this much of the answers is lost when a Space restarts
BACKUP_NAME = "corrections.sqlite3"  # the snapshot's name in the dataset repository


def start_backups(
    store_path: Path, repo_id: str, token: str | None, every_minutes: float = BACKUP_EVERY_MINUTES
) -> "CommitScheduler":
    """Push a snapshot of the store to the private dataset repository `repo_id` every
    `every_minutes` minutes, whenever it changed, with huggingface_hub's CommitScheduler
    (a background thread; it pushes once more when the server exits). The snapshot is taken
    in the scheduler's own thread, just before it lists the files, so a push never reads a
    snapshot being replaced; an unchanged store makes no commit. The repository's history is
    squashed after each commit: an answer deleted from the store is gone from the backups
    after the next one. The scheduler is returned (its stop() ends the pushes).
    CorrectionsError ("Backups are off: ...") when the repository can't be reached or made."""
    from huggingface_hub import CommitScheduler

    folder = Path(tempfile.mkdtemp(prefix="corrections-backup-"))
    store_path = Path(store_path).absolute()

    class SnapshotScheduler(CommitScheduler):
        # huggingface_hub's documented way to change what a scheduled commit uploads.
        def push_to_hub(self):
            if not refresh_snapshot(store_path, folder / BACKUP_NAME):
                return None
            commit = super().push_to_hub()
            # One snapshot in the history, not one a commit: the repository doesn't grow
            # by a store each time, and a purge (delete, then VACUUM) reaches the backups.
            self.api.super_squash_history(repo_id=self.repo_id, repo_type=self.repo_type)
            return commit

    try:
        return SnapshotScheduler(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=folder,
            every=every_minutes,
            private=True,
            token=token,
        )
    except Exception as e:  # network, token, name: whatever it is, the app goes on
        shutil.rmtree(folder, ignore_errors=True)
        raise CorrectionsError(f"Backups are off: {repo_id} can't be reached or made ({e}).") from e


# ---- The review in a terminal ----

PICTURE_COLUMNS = 40  # the widest picture in the terminal, in characters
PICTURE_ROWS = 20  # the tallest, in lines (two pixels each: half blocks)
INK_CONTRAST = 0.35  # a pixel this far from the background's grey (0 to 1) is ink
INK_COVERAGE = 0.2  # a downscaled pixel this much covered by ink is drawn
HALF_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}
KEYS = "a(ccept) r(eject) s(kip) q(uit)"


def terminal_picture(png: bytes) -> str:
    """A picture as lines of Unicode half blocks (each character two pixels, one above the
    other), cropped to its ink and scaled to fit PICTURE_COLUMNS x PICTURE_ROWS. Ink is
    what differs from the background (the median grey), so dark-on-light and light-on-dark
    both show; transparent pixels are background."""
    try:
        with Image.open(io.BytesIO(png)) as image:
            image.load()
            rgba = image.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError):
        return "(a picture that can't be shown)"
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    gray = np.asarray(Image.alpha_composite(white, rgba).convert("L"), np.float32) / 255
    ink = np.abs(gray - np.median(gray)) > INK_CONTRAST
    if not ink.any():
        return "(no ink)"
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    scale = min(PICTURE_COLUMNS / ink.shape[1], 2 * PICTURE_ROWS / ink.shape[0], 1.0)
    width = max(1, round(ink.shape[1] * scale))
    height = max(2, 2 * round(ink.shape[0] * scale / 2))
    small = Image.fromarray(ink.astype(np.uint8) * 255).resize(
        (width, height), Image.Resampling.BOX
    )
    drawn = (np.asarray(small) >= INK_COVERAGE * 255).tolist()
    return "\n".join(
        "".join(HALF_BLOCKS[pair] for pair in zip(upper, lower, strict=True))
        for upper, lower in zip(drawn[0::2], drawn[1::2], strict=True)
    )


def review(store: Store, answers: Iterator[str], show: Callable[..., None] = print) -> Counter:
    """Show each new correction (picture, label, reading) and apply the owner's key for it,
    one line of `answers` each: a(ccept), r(eject), s(kip), q(uit); the end of the answers
    quits. The decisions counted: accepted, rejected, skipped, changed (replaced meanwhile
    by the visitor: left new)."""
    decisions = Counter()
    pending = store.rows("new", pictures=False)
    for number, row in enumerate(pending, 1):
        show(f"\n#{row.id} ({number} of {len(pending)}), {row.created_at}, model {row.model[:12]}")
        show(terminal_picture(store.picture(row.id)))
        show(f"The visitor says: {row.label!r}   The model read: {_as_read(row.reading)}")
        key = _ask(answers, show)
        if key == "q":
            break
        if key == "s":
            decisions["skipped"] += 1
            continue
        status = "accepted" if key == "a" else "rejected"
        decisions[status if store.decide(row.id, status, row.label) else "changed"] += 1
    return decisions


def _as_read(reading: dict) -> str:
    """What the model read, with its confidence in each digit: "'71' (0.98, 0.64)"."""
    read = read_as_label(reading)
    if read is None:
        return "nothing"
    digits = reading.get("digits") if isinstance(reading.get("digits"), list) else []
    confidences = [d.get("confidence") for d in digits if isinstance(d, dict)]
    if not confidences or not all(isinstance(c, (int, float)) for c in confidences):
        return repr(read)
    return f"{read!r} ({', '.join(f'{c:.2f}' for c in confidences)})"


def _ask(answers: Iterator[str], show: Callable[..., None]) -> str:
    """The first key the owner types that is one of a, r, s, q ("q" when answers end)."""
    while True:
        show(f"{KEYS}? ", end="", flush=True)
        line = next(answers, None)
        if line is None:
            show()
            return "q"
        key = line.strip().lower()[:1]
        if key in ("a", "r", "s", "q"):
            return key
        show(f"Type one of {KEYS}.")


# ---- The command line ----


def main(argv: list[str] | None = None) -> int:
    """`python corrections.py COMMAND [ARGS] [--db PATH]`: 0 when done, 1 when not (why is
    printed on stderr), 2 for a command line that is not understood."""
    arguments = _parser().parse_args(argv)
    try:
        return arguments.run(arguments)
    except CorrectionsError as e:
        print(f"corrections.py {arguments.command}: {e}", file=sys.stderr)
    except OSError as e:  # writing an export or a snapshot: a full disk, a folder not ours
        where = f" ({e.filename})" if e.filename else ""
        print(f"corrections.py {arguments.command}: {e.strerror or e}{where}", file=sys.stderr)
    return 1


def _parser() -> argparse.ArgumentParser:
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--db",
        type=Path,
        default=store_path() or DEFAULT_PATH,
        help="the store (default: CORRECTIONS_DB, else data/corrections.sqlite3 beside app.py)",
    )
    parser = argparse.ArgumentParser(
        prog="corrections.py", description="The owner's tools for the corrections store."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    command = commands.add_parser(
        "stats", parents=[store], help="counts, live accuracy, confusion (read-only)"
    )
    command.add_argument("--json", action="store_true", help="print the figures as JSON")
    command.set_defaults(run=_run_stats)

    command = commands.add_parser(
        "review", parents=[store], help="accept or reject the new corrections"
    )
    bulk = command.add_mutually_exclusive_group()
    bulk.add_argument(
        "--accept-agreeing",
        action="store_true",
        help="accept every new correction whose label is what the model read",
    )
    bulk.add_argument("--accept-label", metavar="LABEL", help="accept every new one with LABEL")
    command.set_defaults(run=_run_review)

    command = commands.add_parser(
        "export", parents=[store], help="write an imagefolder dataset (read-only)"
    )
    command.add_argument("out", type=Path, metavar="OUT", help="a new or empty folder")
    command.add_argument("--status", choices=(*STATUSES, "all"), default="accepted")
    command.set_defaults(run=_run_export)

    command = commands.add_parser("delete", parents=[store], help="delete corrections, vacuum")
    command.add_argument("ids", type=int, nargs="*", metavar="ID")
    command.add_argument("--rejected", action="store_true", help="delete every rejected one")
    command.set_defaults(run=_run_delete)

    command = commands.add_parser(
        "snapshot", parents=[store], help="a consistent, checked copy (read-only)"
    )
    command.add_argument("out", type=Path, metavar="OUT.sqlite3")
    command.set_defaults(run=_run_snapshot)
    return parser


def _run_stats(arguments: argparse.Namespace) -> int:
    figures = stats(arguments.db)
    print(json.dumps(figures, indent=1) if arguments.json else format_stats(figures))
    return 0


def _run_review(arguments: argparse.Namespace) -> int:
    label = arguments.accept_label
    if label is not None and valid_label(label) is None:
        raise CorrectionsError(f"{label!r} is no label: {LABEL_RULE}.")
    with closing(_open_existing(arguments.db)) as store:
        if arguments.accept_agreeing:
            print(f"Accepted {_count(store.accept_agreeing())} that agree with the reading.")
        elif label is not None:
            print(f"Accepted {_count(store.accept_label(label))} labelled {valid_label(label)!r}.")
        else:
            decisions = review(store, iter(sys.stdin.readline, ""))
            left = len(store.rows("new", pictures=False))
            done = ", ".join(f"{name} {count}" for name, count in decisions.items()) or "nothing"
            print(f"Reviewed: {done}. Still new: {left}.")
    return 0


def _run_export(arguments: argparse.Namespace) -> int:
    count = export(arguments.db, arguments.out, arguments.status)
    print(f"Wrote {_count(count)} ({arguments.status}) to {arguments.out.absolute()}.")
    return 0


def _run_delete(arguments: argparse.Namespace) -> int:
    if bool(arguments.ids) == arguments.rejected:
        raise CorrectionsError("Name the ids to delete, or --rejected (not both).")
    with closing(_open_existing(arguments.db)) as store:
        before = store.size_bytes()
        deleted = store.delete_rejected() if arguments.rejected else store.delete(arguments.ids)
        store.vacuum()
        after = store.size_bytes()
    missing = sorted(set(arguments.ids) - set(deleted))
    print(f"Deleted {_count(len(deleted))}" + (f" (ids {_ids(deleted)})" if deleted else ""))
    if missing:
        print(f"Not found: ids {_ids(missing)}")
    print(f"Vacuumed: {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB.")
    return 0


def _run_snapshot(arguments: argparse.Namespace) -> int:
    snapshot(arguments.db, arguments.out)
    print(f"Snapshot of {arguments.db.absolute()} at {arguments.out.absolute()}: integrity ok.")
    return 0


def _open_existing(path: Path) -> Store:
    """The store for a tool that writes: it must exist (a tool creates no store)."""
    if not Path(path).is_file():
        raise CorrectionsError(f"No store at {Path(path).absolute()}: nothing to change.")
    return Store.open(path)


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids))


def _count(n: int) -> str:
    return f"{n} correction" if n == 1 else f"{n} corrections"


if __name__ == "__main__":
    sys.exit(main())
