"""The corrections store and the owner's tools, on real SQLite files and real PNGs.

No mocks: faults are real ones (a folder under a file, a file that is not a database, a lock
held by another connection, a store at its size limit, a process killed with SIGKILL), the
command line runs as a subprocess from the repository root, and the export is loaded by the
real `datasets` library, offline.
"""

import hashlib
import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import corrections
from corrections import CorrectionsError, RateLimit, Store

ROOT = Path(corrections.__file__).resolve().parent
ISSUE_COLUMNS = ("id", "created_at", "picture", "reading", "label", "status", "model")
MODEL_A = "a" * 64  # two weights files' sha256, as the model column holds them
MODEL_B = "b" * 64
LOCK_TIMEOUT_S = 0.3  # the busy timeout of the stores that meet a lock in these tests


def drawing_png(seed: int = 0, size=(560, 280), transparent: bool = True) -> bytes:
    """A PNG of a few pen strokes, as the canvas sends (black on transparent) or as an
    upload might be (black on white, another size)."""
    rng = random.Random(seed)
    width, height = size
    background = (0, 0, 0, 0) if transparent else (255, 255, 255, 255)
    image = Image.new("RGBA" if transparent else "RGB", size, background)
    points = [(rng.uniform(0.3, 0.7) * width, rng.uniform(0.1, 0.9) * height) for _ in range(4)]
    ImageDraw.Draw(image).line(points, fill=(0, 0, 0, 255), width=max(3, height // 15))
    return _png(image)


def noise_png(side: int) -> bytes:
    """A PNG that does not compress: about 3 bytes a pixel."""
    pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return _png(Image.fromarray(pixels))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def reading(text: str | None, status: str | None = None) -> dict:
    """A reading as the app's JSON has it ("digit", "number", "not_a_digit", "empty")."""
    if status is None:
        status = "digit" if text and len(text) == 1 else "number"
    return {"status": status, "text": text, "digits": [], "message": None}


@contextmanager
def connected(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection, committed and closed at the end of the block."""
    connection = sqlite3.connect(path)
    try:
        with connection:
            yield connection
    finally:
        connection.close()


def columns(path: Path) -> list[str]:
    with connected(path) as connection:
        return [row[1] for row in connection.execute("PRAGMA table_info(corrections)")]


def pragma(path: Path, name: str):
    with connected(path) as connection:
        return connection.execute(f"PRAGMA {name}").fetchall()


def foreign_store(path: Path, rows: list[tuple]) -> None:
    """A store made by another tool: only the issue's columns, no user_version, no WAL."""
    with connected(path) as connection:
        connection.execute(
            "CREATE TABLE corrections (id INTEGER PRIMARY KEY, created_at TEXT, picture BLOB,"
            " reading TEXT, label TEXT, status TEXT, model TEXT)"
        )
        connection.executemany(
            "INSERT INTO corrections (created_at, picture, reading, label, status, model)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )


def cli(*args: str, env: dict | None = None, stdin: str = "", cwd: Path = ROOT):
    """`python corrections.py ARGS` as the owner runs it, from the repository root."""
    return subprocess.run(
        [sys.executable, str(ROOT / "corrections.py"), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


_opened: list[Store] = []


def open_store(path: Path, **options) -> Store:
    """Store.open, closed when the test ends."""
    store = Store.open(path, **options)
    _opened.append(store)
    return store


@pytest.fixture(autouse=True)
def _close_stores():
    yield
    while _opened:
        _opened.pop().close()


@pytest.fixture
def store(tmp_path) -> Store:
    return open_store(tmp_path / "data" / "corrections.sqlite3")


@pytest.fixture
def filled(tmp_path) -> Path:
    """A store with a bit of everything: agreeing and misread digits, numbers, "not a
    digit", two models, every status, pictures of two sizes with and without transparency."""
    path = tmp_path / "filled.sqlite3"
    store = open_store(path)
    answers = [  # label, reading, model, status
        ("7", reading("7"), MODEL_A, "accepted"),
        ("7", reading("1"), MODEL_A, "new"),
        ("1", reading("1"), MODEL_A, "new"),
        ("07", reading("01"), MODEL_A, "accepted"),
        ("407", reading("407"), MODEL_A, "new"),
        ("not a digit", reading(None, "not_a_digit"), MODEL_A, "new"),
        ("4", reading(None, "not_a_digit"), MODEL_A, "rejected"),
        ("9", reading("4"), MODEL_B, "accepted"),
        ("9", reading("9"), MODEL_B, "new"),
    ]
    for n, (label, shown, model, status) in enumerate(answers):
        png = drawing_png(n, (560, 280) if n % 2 else (300, 400), transparent=n % 3 != 0)
        row_id = store.save(f"drawing-{n}", png, shown, label, model, sequence=1)
        if status != "new":
            assert store.decide(row_id, status, label)
    return path


# ---- Where the store is, and what an answer may be ----


def test_store_path_follows_corrections_db():
    assert corrections.store_path({}) == corrections.DEFAULT_PATH
    assert corrections.store_path({"CORRECTIONS_DB": ""}) == corrections.DEFAULT_PATH
    assert corrections.DEFAULT_PATH == ROOT / "data" / "corrections.sqlite3"
    assert corrections.store_path({"CORRECTIONS_DB": "off"}) is None
    assert corrections.store_path({"CORRECTIONS_DB": " OFF "}) is None
    relative = corrections.store_path({"CORRECTIONS_DB": "x/c.sqlite3"})
    assert relative == Path.cwd() / "x" / "c.sqlite3"  # the current folder's, now
    assert corrections.store_path({"CORRECTIONS_DB": "/data/c.sqlite3"}) == Path("/data/c.sqlite3")


def test_size_limit_from_the_environment():
    assert corrections.size_limit({}) == 1_000_000_000
    assert corrections.size_limit({"CORRECTIONS_MAX_MB": "2.5"}) == 2_500_000
    for wrong in ("lots", "0", "-5", "nan", "inf", ""):
        with pytest.raises(corrections.CorrectionsError, match="CORRECTIONS_MAX_MB"):
            corrections.size_limit({"CORRECTIONS_MAX_MB": wrong})


@pytest.mark.parametrize(
    "text, label",
    [
        ("7", "7"),
        (" 407 ", "407"),
        ("07", "07"),
        ("12345678", "12345678"),
        ("not a digit", "not a digit"),
        (" Not  a Digit\n", "not a digit"),
        ("NOT A DIGIT", "not a digit"),
        ("123456789", None),
        ("", None),
        ("   ", None),
        ("4 0 7", None),
        ("7.", None),
        ("-7", None),
        ("seven", None),
        ("not a digit!", None),
        ("٣", None),  # an Arabic-Indic three: the model reads 0-9 only
        ("7" * 1000, None),
    ],
)
def test_labels_are_validated(text, label):
    assert corrections.valid_label(text) == label
    if label is not None:
        assert corrections.LABEL_PATTERN.fullmatch(label)


def test_max_digits_is_the_readers():
    source = (ROOT / "reading.py").read_text()
    assert f"MAX_DIGITS = {corrections.MAX_DIGITS}\n" in source


def test_model_sha256_is_the_files(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(os.urandom(3 * corrections.HASH_CHUNK + 5))
    assert corrections.model_sha256(weights) == hashlib.sha256(weights.read_bytes()).hexdigest()


# ---- Schema and migration ----


def test_a_new_store_has_the_issues_columns_and_a_version(store):
    path = store.path
    assert path.is_file()  # the folder data/ was made
    assert columns(path)[:7] == list(ISSUE_COLUMNS)
    assert {"drawing", "sequence"} <= set(columns(path))
    assert pragma(path, "user_version") == [(corrections.SCHEMA_VERSION,)]
    assert pragma(path, "journal_mode") == [("wal",)]
    row_id = store.save("d", drawing_png(), reading("7"), "7", MODEL_A, 0)
    with connected(path) as connection:
        created_at, picture, shown, label, status, model = connection.execute(
            "SELECT created_at, picture, reading, label, status, model FROM corrections"
            " WHERE id = ?",
            (row_id,),
        ).fetchone()
    assert created_at.endswith("+00:00") and created_at[:4].isdigit()
    assert picture == drawing_png() and json.loads(shown) == reading("7")
    assert (label, status, model) == ("7", "new", MODEL_A)
    again = open_store(path)
    assert again.rows()[0].id == row_id  # opening again keeps everything
    again.close()
    store.close()
    assert not Path(f"{path}-wal").exists()  # the last connection closed: one file again


def test_a_foreign_store_is_migrated_on_write_only(tmp_path):
    path = tmp_path / "foreign.sqlite3"
    png = drawing_png(3, (200, 200), transparent=False)
    foreign_store(path, [("2026-01-02T03:04:05Z", png, json.dumps(reading("3")), "8", "new", "m")])

    # Reading tools read it as it is: no migration, no new column.
    assert cli("stats", "--db", str(path)).returncode == 0
    assert (
        cli("export", str(tmp_path / "out"), "--status", "new", "--db", str(path)).returncode == 0
    )
    assert cli("snapshot", str(tmp_path / "copy.sqlite3"), "--db", str(path)).returncode == 0
    assert columns(path) == list(ISSUE_COLUMNS)
    assert pragma(path, "user_version") == [(0,)]

    store = open_store(path)
    assert columns(path) == [*ISSUE_COLUMNS, "drawing", "sequence"]
    assert pragma(path, "user_version") == [(corrections.SCHEMA_VERSION,)]
    [old] = store.rows()
    assert (old.label, old.read, old.picture, old.status) == ("8", "3", png, "new")
    new_id = store.save("d", drawing_png(), reading("5"), "5", MODEL_A, 0)
    assert [row.id for row in store.rows()] == [old.id, new_id]


def test_stores_that_cannot_be_used_say_why(tmp_path):
    newer = tmp_path / "newer.sqlite3"
    foreign_store(newer, [])
    with connected(newer) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(CorrectionsError, match="^Corrections are off: .*newer version"):
        open_store(newer)

    lacking = tmp_path / "lacking.sqlite3"
    with connected(lacking) as connection:
        connection.execute("CREATE TABLE corrections (id INTEGER PRIMARY KEY, label TEXT)")
    with pytest.raises(CorrectionsError, match="lacks the columns created_at, picture"):
        open_store(lacking)
    done = cli("stats", "--db", str(lacking))
    assert done.returncode == 1 and "lacks the columns" in done.stderr


# ---- One answer per drawing ----


def test_a_later_answer_replaces_an_earlier_one_even_out_of_order(store):
    png = drawing_png()
    assert store.answer_for("d1") is None
    first = store.save("d1", png, reading("1"), "7", MODEL_A, sequence=1)
    assert store.answer_for("d1") == "7" and store.answer_for("d2") is None
    assert store.decide(first, "accepted", "7")

    assert store.save("d1", png, reading("1"), "1", MODEL_A, sequence=3) == first
    [row] = store.rows()
    assert (row.label, row.status) == ("1", "new")  # a new answer is reviewed again

    assert store.save("d1", png, reading("1"), "9", MODEL_A, sequence=2) == first  # sent before
    assert [row.label for row in store.rows()] == ["1"]
    assert store.save("d1", png, reading("1"), " Not a digit", MODEL_A, sequence=3) == first
    assert [row.label for row in store.rows()] == ["not a digit"]

    other = store.save("d2", png, reading("1"), "1", MODEL_A, sequence=0)
    assert other != first and len(store.rows()) == 2


def test_a_review_never_accepts_an_answer_it_did_not_show(store):
    row_id = store.save("d", drawing_png(), reading("1"), "7", MODEL_A, sequence=1)
    store.save("d", drawing_png(), reading("1"), "1", MODEL_A, sequence=2)  # changed meanwhile
    assert not store.decide(row_id, "accepted", "7")
    assert store.rows()[0].status == "new"
    with pytest.raises(ValueError):
        store.decide(row_id, "new", "1")


@pytest.mark.parametrize(
    "drawing, picture, label, message",
    [
        ("d", drawing_png(), "seven", "a number of up to 8 digits"),
        ("d", drawing_png(), "123456789", "a number of up to 8 digits"),
        ("d", b"GIF89a....", "7", "not a PNG"),
        ("", drawing_png(), "7", "no id"),
    ],
)
def test_what_is_not_an_answer_is_not_saved(store, drawing, picture, label, message):
    with pytest.raises(CorrectionsError, match=f"^Your answer could not be saved: .*{message}"):
        store.save(drawing, picture, reading("7"), label, MODEL_A, 0)
    assert store.rows() == []


def test_accepted_is_what_the_fine_tune_reads(filled):
    accepted = open_store(filled).accepted()
    assert [(row.label, row.model) for row in accepted] == [
        ("7", MODEL_A),
        ("07", MODEL_A),
        ("9", MODEL_B),
    ]
    assert all(row.picture.startswith(corrections.PNG_SIGNATURE) for row in accepted)
    assert all(row.status == "accepted" for row in accepted)


# ---- Rate limits ----


def test_rate_limits_slide_per_key():
    limit = RateLimit(3, window_s=0.5)
    assert [limit.allow("page") for _ in range(5)] == [True, True, True, False, False]
    assert limit.allow("another page")  # each key has its own window
    time.sleep(0.55)
    assert [limit.allow("page") for _ in range(4)] == [True, True, True, False]
    time.sleep(0.55)  # a window later: the idle keys are forgotten
    limit.allow("page")
    assert set(limit._times) == {"page"}


def test_rate_limit_constants_meet_the_issue():
    assert corrections.ANSWERS_PER_PAGE_PER_MINUTE >= 30
    assert corrections.ANSWERS_PER_MINUTE > corrections.ANSWERS_PER_PAGE_PER_MINUTE


def test_a_rate_limit_counts_exactly_across_threads():
    limit = RateLimit(100, window_s=60)
    allowed = []

    def knock():
        allowed.extend(limit.allow("everyone") for _ in range(50))

    threads = [threading.Thread(target=knock) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 100 and len(allowed) == 800


# ---- Faults: nothing lost, and a message for people when an answer is not kept ----


def test_sixteen_visitors_at_once_lose_nothing(store):
    png = drawing_png()
    saved: list[int] = []
    errors: list[Exception] = []
    shared_sequences = list(range(16 * 5))
    random.Random(0).shuffle(shared_sequences)

    def visitor(k: int) -> None:
        try:
            for n in range(20):
                saved.append(store.save(f"v{k}-{n}", png, reading("7"), "7", MODEL_A, 0))
            for sequence in shared_sequences[k * 5 : k * 5 + 5]:  # one drawing, racing answers
                store.save("shared", png, reading("7"), str(sequence), MODEL_A, sequence)
        except Exception as e:  # reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=visitor, args=(k,)) for k in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = store.rows()
    assert len(saved) == len(set(saved)) == 16 * 20
    assert {row.id for row in rows} >= set(saved) and len(rows) == 16 * 20 + 1
    shared = [row for row in rows if row.id not in set(saved)]
    assert [row.label for row in shared] == [str(16 * 5 - 1)]  # the last sequence won


SAVER = """
import sys
sys.path.insert(0, sys.argv[1])
import corrections
store = corrections.Store.open(sys.argv[2])
png = open(sys.argv[3], "rb").read()
for n in range(100_000):
    reading = {"status": "digit", "text": "7", "digits": [], "message": None}
    print(store.save(f"drawing-{n}", png, reading, "7", "m" * 64, 0), flush=True)
"""


def test_a_server_killed_mid_write_keeps_every_acknowledged_answer(tmp_path):
    path = tmp_path / "killed.sqlite3"
    picture = tmp_path / "noise.png"
    picture.write_bytes(noise_png(120))  # 43 KB a row: a kill is likely mid-write
    acknowledged = []
    with subprocess.Popen(
        [sys.executable, "-c", SAVER, str(ROOT), str(path), str(picture)],
        stdout=subprocess.PIPE,
        text=True,
    ) as saver:
        for line in saver.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) == 60:
                os.kill(saver.pid, signal.SIGKILL)
                break
        rest = saver.stdout.read()  # what it printed before it died was acknowledged too
        saver.wait(timeout=30)
    assert saver.returncode == -signal.SIGKILL
    acknowledged += [int(line) for line in rest.splitlines(keepends=True) if line.endswith("\n")]

    with connected(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {i for (i,) in connection.execute("SELECT id FROM corrections")}
    assert set(acknowledged) <= stored
    assert open_store(path).save("after", noise_png(8), reading("7"), "7", MODEL_A, 0)


def test_a_folder_that_cannot_be_made_turns_corrections_off(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    with pytest.raises(CorrectionsError, match="^Corrections are off: its folder can't be made"):
        open_store(a_file / "data" / "c.sqlite3")  # fails for root too, unlike chmod


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_that_cannot_be_written_turns_corrections_off():
    # /proc/self is a folder that no one, root included, can write a file in.
    with pytest.raises(CorrectionsError, match="^Corrections are off: .*can't be written"):
        Store.open(Path("/proc/self/corrections.sqlite3"))


def test_a_file_that_is_not_a_database_turns_corrections_off(tmp_path):
    path = tmp_path / "c.sqlite3"
    path.write_bytes(b"These are notes, not a database.\n" * 200)
    with pytest.raises(CorrectionsError, match="^Corrections are off: .*not a SQLite database"):
        open_store(path)
    done = cli("stats", "--db", str(path))
    assert done.returncode == 1 and "not a SQLite database" in done.stderr
    assert path.read_bytes() == b"These are notes, not a database.\n" * 200


def test_a_lock_that_does_not_clear_fails_within_the_timeout(tmp_path):
    path = tmp_path / "c.sqlite3"
    store = open_store(path, timeout_s=LOCK_TIMEOUT_S)
    store.save("before", drawing_png(), reading("7"), "7", MODEL_A, 0)
    foreign = tmp_path / "foreign.sqlite3"
    foreign_store(foreign, [])

    holders = [sqlite3.connect(p, isolation_level=None) for p in (path, foreign)]
    for holder in holders:
        holder.execute("BEGIN EXCLUSIVE")
    try:
        start = time.monotonic()
        with pytest.raises(CorrectionsError, match="^Your answer could not be saved: .*busy"):
            store.save("during", drawing_png(), reading("7"), "7", MODEL_A, 0)
        assert time.monotonic() - start < LOCK_TIMEOUT_S + 2
        assert [row.label for row in store.rows()] == ["7"]  # reading goes on (WAL)
        start = time.monotonic()
        with pytest.raises(CorrectionsError, match="^Corrections are off: .*busy"):
            open_store(foreign, timeout_s=LOCK_TIMEOUT_S)  # its migration needs the lock
        assert time.monotonic() - start < LOCK_TIMEOUT_S + 2
    finally:
        for holder in holders:
            holder.close()
    assert store.save("after", drawing_png(), reading("7"), "7", MODEL_A, 0)


def test_a_store_past_its_size_limit_is_full(tmp_path):
    path = tmp_path / "c.sqlite3"
    open_store(path).save("first", drawing_png(), reading("7"), "7", MODEL_A, 0)
    size = open_store(path).size_bytes()

    at_limit = open_store(path, max_bytes=size)  # checked before writing
    with pytest.raises(CorrectionsError, match="^Corrections are full"):
        at_limit.save("second", drawing_png(1), reading("7"), "7", MODEL_A, 0)

    # Room for a small answer, not for a 200 KB one: SQLite itself stops the write
    # (SQLITE_FULL, as from a full disk, through PRAGMA max_page_count), and rolls it back.
    nearly = open_store(path, max_bytes=size + 16 * 4096)
    with pytest.raises(CorrectionsError, match="^Corrections are full"):
        nearly.save("big", noise_png(260), reading("7"), "7", MODEL_A, 0)
    assert nearly.save("small", drawing_png(2), reading("7"), "7", MODEL_A, 0)
    assert pragma(path, "integrity_check") == [("ok",)]
    assert [row.label for row in open_store(path).rows()] == ["7", "7"]


# ---- Pictures in a terminal ----


def test_pictures_show_as_half_blocks_whatever_their_background():
    for png in (
        drawing_png(1),  # black on transparent (the canvas)
        drawing_png(1, (300, 900), transparent=False),  # black on white, tall (an upload)
        _png(
            Image.eval(Image.open(io.BytesIO(drawing_png(1, transparent=False))), lambda v: 255 - v)
        ),
    ):
        lines = corrections.terminal_picture(png).splitlines()
        assert 2 <= len(lines) <= corrections.PICTURE_ROWS
        assert max(len(line) for line in lines) <= corrections.PICTURE_COLUMNS
        assert "█" in "".join(lines) and set("".join(lines)) <= set(" ▀▄█")
    blank = _png(Image.new("RGBA", (560, 280), (0, 0, 0, 0)))
    assert corrections.terminal_picture(blank) == "(no ink)"
    assert "can't be shown" in corrections.terminal_picture(b"\x89PNG\r\n\x1a\nbroken")


# ---- The command line ----


@pytest.mark.parametrize(
    "command",
    [["stats"], ["export", "OUT/dataset"], ["snapshot", "OUT/copy.sqlite3"], ["review"]]
    + [["delete", "1"], ["delete", "--rejected"], ["review", "--accept-agreeing"]],
)
def test_commands_on_a_missing_store_exit_1_and_create_nothing(tmp_path, command):
    path = tmp_path / "nowhere" / "c.sqlite3"
    args = [str(tmp_path / arg) if arg.startswith("OUT") else arg for arg in command]
    done = cli(*args, "--db", str(path))
    assert done.returncode == 1
    assert "No store at" in done.stderr and str(path) in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_store_defaults_to_corrections_db_from_the_current_folder(filled, tmp_path):
    done = cli("stats", env={"CORRECTIONS_DB": filled.name}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{filled} (read-only): 9 answers" in done.stdout
    done = cli("stats", "--db", filled.name, cwd=tmp_path)  # --db too is relative to it
    assert done.returncode == 0, done.stderr


def test_stats_count_and_split_by_model(filled):
    done = cli("stats", "--json", "--db", str(filled))
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    everything = figures["all"]
    assert everything["answers"] == 9
    assert everything["by_status"] == {"new": 5, "accepted": 3, "rejected": 1}
    assert everything["by_label"] == {
        "1": 1,
        "4": 1,
        "7": 2,
        "9": 2,
        "07": 1,
        "407": 1,
        "not a digit": 1,
    }
    a, b = figures["models"][MODEL_A], figures["models"][MODEL_B]
    # A: 7/7, 7/1, 1/1, 07/01, 407/407, nd/nd agree 4 of 6 (the rejected 4 is left out).
    assert (a["answers"], a["judged"], a["confirmed"], a["accuracy"]) == (7, 6, 4, 0.6667)
    assert a["confusion"] == {
        "7": {"7": 1, "1": 1},
        "1": {"1": 1},
        "not a digit": {"not a digit": 1},
    }
    assert a["numbers"] == {"answers": 2, "confirmed": 1}
    assert (b["confirmed"], b["confusion"]) == (1, {"9": {"4": 1, "9": 1}})

    text = cli("stats", "--db", str(filled)).stdout
    assert f"Model {MODEL_A[:12]}:" in text and f"Model {MODEL_B[:12]}:" in text
    assert "live accuracy: 66.7% (4 of 6 readings confirmed" in text
    assert "numbers: 2 answered, 1 read right" in text


def test_review_accepts_and_rejects_what_the_owner_types(filled):
    new = [row.id for row in open_store(filled).rows("new")]
    done = cli("review", "--db", str(filled), stdin="a\nx\nr\ns\nq\n")
    assert done.returncode == 0, done.stderr
    assert "The visitor says: '7'   The model read: '1'" in done.stdout
    assert "█" in done.stdout and "Type one of a(ccept)" in done.stdout
    assert "Reviewed: accepted 1, rejected 1, skipped 1. Still new: 3." in done.stdout
    status = {row.id: row.status for row in open_store(filled).rows()}
    assert [status[i] for i in new] == ["accepted", "rejected", "new", "new", "new"]

    done = cli("review", "--db", str(filled), stdin="")  # the end of input quits
    assert done.returncode == 0 and "Still new: 3." in done.stdout


def test_review_accepts_in_bulk(filled):
    done = cli("review", "--accept-label", " Not a digit ", "--db", str(filled))
    assert done.returncode == 0 and "Accepted 1 correction labelled 'not a digit'" in done.stdout
    done = cli("review", "--accept-agreeing", "--db", str(filled))
    assert done.returncode == 0 and "Accepted 3 corrections" in done.stdout  # 1/1, 407, 9/9
    assert [row.label for row in open_store(filled).rows("new")] == ["7"]  # the misread 7
    done = cli("review", "--accept-label", "seven", "--db", str(filled))
    assert done.returncode == 1 and "is no label" in done.stderr


EXPORT_LOADER = """
import json, sys
from datasets import load_dataset
dataset = load_dataset("imagefolder", data_dir=sys.argv[1], split="train")
print(json.dumps({
    "features": {name: str(feature) for name, feature in dataset.features.items()},
    "rows": [
        {"label": row["label"], "id": row["id"], "size": list(row["image"].size)}
        for row in dataset
    ],
}))
"""


def test_export_loads_with_datasets_offline(filled, tmp_path):
    out = tmp_path / "dataset"
    done = cli("export", str(out), "--db", str(filled))
    assert done.returncode == 0, done.stderr
    assert "Wrote 3 corrections (accepted)" in done.stdout
    metadata = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [record["label"] for record in metadata] == ["7", "07", "9"]
    assert set(metadata[0]) >= {"file_name", "label", "id", "model", "read", "status"}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["metadata.jsonl", *(record["file_name"] for record in metadata)]
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers

    hub = tmp_path / "hf"
    offline = {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(hub),
        "HF_DATASETS_CACHE": str(hub / "datasets"),
    }
    loaded = subprocess.run(
        [sys.executable, "-c", EXPORT_LOADER, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **offline},
    )
    assert loaded.returncode == 0, loaded.stderr
    result = json.loads(loaded.stdout)
    assert "string" in result["features"]["label"] and "Image" in result["features"]["image"]
    by_id = {row["id"]: row for row in result["rows"]}
    assert sorted(row["label"] for row in result["rows"]) == ["07", "7", "9"]  # "07" keeps its 0
    assert {tuple(row["size"]) for row in by_id.values()} == {(560, 280), (300, 400)}


def test_export_refuses_a_folder_with_something_in_it(filled, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    done = cli("export", str(out), "--db", str(filled))
    assert done.returncode == 1 and "is not an empty folder" in done.stderr
    assert [p.name for p in out.iterdir()] == ["mine.txt"]

    empty = tmp_path / "empty"
    empty.mkdir()
    done = cli("export", str(empty), "--status", "all", "--db", str(filled))
    assert done.returncode == 0 and "Wrote 9 corrections (all)" in done.stdout
    done = cli("export", str(tmp_path / "none"), "--status", "rejected", "--db", str(filled))
    assert done.returncode == 0  # the rejected one
    store = open_store(filled)
    store.delete_rejected()
    done = cli("export", str(tmp_path / "none2"), "--status", "rejected", "--db", str(filled))
    assert done.returncode == 1 and "no rejected corrections" in done.stderr
    assert not (tmp_path / "none2").exists()


def test_delete_by_id_and_rejected_then_vacuum(filled):
    store = open_store(filled)
    store.save("big", noise_png(200), reading("7"), "7", MODEL_A, 0)
    big = store.rows()[-1].id
    before = store.size_bytes()
    done = cli("delete", str(big), "1", "999", "--db", str(filled))
    assert done.returncode == 0, done.stderr
    assert f"Deleted 2 corrections (ids {big}, 1)" in done.stdout
    assert "Not found: ids 999" in done.stdout and "Vacuumed" in done.stdout
    assert store.size_bytes() < before - 100_000  # the pages are gone, and from the disk:
    assert filled.stat().st_size == store.size_bytes()  # the file is the database,
    assert Path(f"{filled}-wal").stat().st_size == 0  # the WAL empty (the app still open)

    done = cli("delete", "--rejected", "--db", str(filled))
    assert done.returncode == 0 and "Deleted 1 correction" in done.stdout
    assert [row.status for row in store.rows("rejected")] == []
    assert len(store.rows()) == 7
    done = cli("delete", "--db", str(filled))
    assert done.returncode == 1 and "Name the ids" in done.stderr


def test_snapshot_is_a_checked_self_contained_copy(filled, tmp_path):
    out = tmp_path / "snapshots" / "copy.sqlite3"
    store = open_store(filled)
    writer = threading.Thread(
        target=lambda: [
            store.save(f"w{n}", drawing_png(n), reading("7"), "7", MODEL_A, 0) for n in range(30)
        ]
    )
    writer.start()  # a snapshot of a store being written is still whole
    done = cli("snapshot", str(out), "--db", str(filled))
    writer.join()
    assert done.returncode == 0, done.stderr
    assert "integrity ok" in done.stdout
    assert pragma(out, "integrity_check") == [("ok",)]
    assert pragma(out, "journal_mode") == [("delete",)]
    assert not Path(f"{out}-wal").exists()
    with connected(out) as copy:
        assert copy.execute("SELECT count(*) FROM corrections").fetchone()[0] >= 9
    assert [p.name for p in out.parent.iterdir()] == ["copy.sqlite3"]

    done = cli("snapshot", str(filled), "--db", str(filled))
    assert done.returncode == 1 and "is the store itself" in done.stderr


# ---- Backups from a Space ----


def test_refresh_snapshot_changes_only_when_the_store_does(tmp_path):
    path, out = tmp_path / "c.sqlite3", tmp_path / "backup" / "corrections.sqlite3"
    out.parent.mkdir()
    assert not corrections.refresh_snapshot(path, out)  # no store yet: nothing to push
    store = open_store(path)
    store.save("d1", drawing_png(), reading("7"), "7", MODEL_A, 0)
    assert corrections.refresh_snapshot(path, out)
    mtime = out.stat().st_mtime_ns
    assert not corrections.refresh_snapshot(path, out)  # unchanged: no new file, no commit
    assert out.stat().st_mtime_ns == mtime
    store.save("d2", drawing_png(1), reading("1"), "1", MODEL_A, 0)
    assert corrections.refresh_snapshot(path, out)
    assert pragma(out, "integrity_check") == [("ok",)]
    with connected(out) as copy:
        assert copy.execute("SELECT label FROM corrections ORDER BY id").fetchall() == [
            ("7",),
            ("1",),
        ]
    assert sorted(p.name for p in out.parent.iterdir()) == ["corrections.sqlite3"]


BACKUP_OFFLINE = """
import sys
sys.path.insert(0, sys.argv[1])
import corrections
try:
    corrections.start_backups(sys.argv[2], "someone/corrections", "hf_not_a_token", 5)
except corrections.CorrectionsError as e:
    print(e)
"""


def test_backups_without_the_hub_say_they_are_off(tmp_path):
    hub = tmp_path / "hf"
    done = subprocess.run(
        [sys.executable, "-c", BACKUP_OFFLINE, str(ROOT), str(tmp_path / "c.sqlite3")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hub)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Backups are off: someone/corrections can't be reached")
