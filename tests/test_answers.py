"""Visitors' answers (issue 23) end to end: a real `python app.py`, a real SQLite file and,
where it says so, Debian's Chromium drawing on the canvas. No mocks: faults are real ones
(a folder below a regular file, a file of garbage, a lock held by another connection, a
server killed with SIGKILL).

Over HTTP, a visitor is harness.visitor.Visitor: the page's own events on Gradio's queue.
Most tests share one server and its store (each looks only at the rows it added); a fault
gets a server of its own. Among them, these tests add about 150 new answers to the shared
server within a minute: under its limit for everyone (corrections.ANSWERS_PER_MINUTE).
"""

import base64
import functools
import json
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from io import BytesIO
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

import app
import corrections
import preprocess
from harness.browser import (
    DESKTOP,
    SEVEN,
    ZERO,
    chromium,
    draw_with_mouse,
    open_app,
    record_events,
    wait_for_label,
)
from harness.drawn import paint
from harness.server import serve, server_process
from harness.visitor import Visitor, data_url, status_of
from model import WEIGHTS_PATH

PANEL = ("correction-right", "correction", "correction-send", "correction-status")
PANEL += ("correction-note",)  # every elem_id of the answers panel
STATUS_TIMEOUT_MS = 15_000  # an answer's status line, on a busy 2-core machine
SECOND_CLICK_S = 1.5  # a press leaves the page (its queue/join request) within this
BUSY_SLACK_S = 5.0  # a busy machine's margin over the store's busy timeout
VISITORS = 16  # at once (issue 23: "16 visitors sending at once lose nothing")
ANSWERS_EACH = 6  # new drawings each of them answers: 96 in all
KILLED_VISITORS = 4  # threads answering when the server is killed
KILL_AFTER = 30  # acknowledged answers before the SIGKILL
KILL_DEADLINE_S = 60  # the answers before the SIGKILL must come within this
PAGE_LIMIT = corrections.ANSWERS_PER_PAGE_PER_MINUTE
REPLACED = 4  # answers that replace one, before the page's limit is reached
Strokes = list[list[tuple[float, float]]]  # as harness.browser draws them: fractions of a square
GARBAGE = b"This is not a SQLite database, only bytes where the store should be.\n" * 64

# The events the page fires, as the browser receives them. Gradio's frontend reads each
# event's completion from the session's `queue/data` stream, fetched with window.fetch: this
# script (run before the page's own) reads a copy of each stream, and of each `queue/join`
# answer (which event id each fn_index got). window.__done(fn) is how many of that event
# have completed, window.__outputs(fn) their output data, in order.
EVENTS_JS = """
(() => {
  const original = window.fetch;
  const fnOf = {};
  const completed = [];
  window.__done = fn => completed.filter(e => fnOf[e.id] === fn).length;
  window.__outputs = fn => completed.filter(e => fnOf[e.id] === fn).map(e => e.data);
  async function follow(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const lines = (rest + value).split("\\n");
      rest = lines.pop();
      for (const line of lines) {
        if (!line.startsWith("data:")) continue;
        const message = JSON.parse(line.slice(5));
        if (message.msg === "process_completed") {
          completed.push({ id: message.event_id, data: message.output?.data });
        }
      }
    }
  }
  window.fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input.url;
    const response = await original(input, init);
    if (url.includes("/queue/join") && init?.body) {
      const fn = JSON.parse(init.body).fn_index;
      response.clone().json().then(joined => { fnOf[joined.event_id] = fn; });
    } else if (url.includes("/queue/data")) {
      follow(response.clone());
    }
    return response;
  };
})();
"""


def canvas_data_url(strokes: Strokes) -> str:
    """The strokes (fractions of a square) drawn as the canvas draws them, in the middle of
    a white canvas of the page's size, as the PNG data URL it sends."""
    width, height = app.CANVAS_SIZE
    side = 0.8 * height
    left, top = (width - side) / 2, (height - side) / 2
    picture = Image.new("RGBA", app.CANVAS_SIZE, "white")
    pixels = [np.array([(left + x * side, top + y * side) for x, y in s]) for s in strokes]
    paint(picture, pixels, 2 * app.BRUSH_RADIUS, (0, 0, 0))
    return data_url(picture.convert("RGB"))


SEVEN_URL = canvas_data_url(SEVEN)


def thanks(label: str) -> str:
    """The status line of an answer that was kept."""
    return f"Thank you: kept as “{label}”."


def stored(db: Path, after: int = 0) -> list[sqlite3.Row]:
    """The store's rows with an id above `after`, oldest first."""
    with closing(sqlite3.connect(db)) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute(
            "SELECT * FROM corrections WHERE id > ? ORDER BY id", (after,)
        ).fetchall()


def last_id(db: Path) -> int:
    """The newest row's id (0 for none): a test's own rows come after it."""
    with closing(sqlite3.connect(db)) as connection:
        return connection.execute("SELECT coalesce(max(id), 0) FROM corrections").fetchone()[0]


def integrity(db: Path) -> str:
    """SQLite's own check of the whole file: "ok" when it is intact."""
    with closing(sqlite3.connect(db)) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def visitor_with_a_drawing(url: str) -> Visitor:
    """A visitor whose page has read a 7 at pen-up and made it the drawing to answer for."""
    visitor = Visitor(url)
    assert visitor.send(SEVEN_URL, pen_up=True)["output"]["data"][0]["label"] == "7"
    assert visitor.new_drawing()["success"]
    return visitor


@pytest.fixture(scope="module")
def store_server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """One server for most tests, and its store."""
    db = tmp_path_factory.mktemp("answers") / "corrections.sqlite3"
    with serve(environ={"CORRECTIONS_DB": str(db)}) as url:
        yield url, db


@pytest.fixture(scope="module")
def events(store_server) -> Visitor:
    """The fn_index of each of the page's events (a Visitor reads them from its config)."""
    visitor = Visitor(store_server[0])
    visitor.close()
    return visitor


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser, store_server) -> Iterator[Page]:
    """The app's page in Chromium, following its events (EVENTS_JS), off loopback refused."""
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(EVENTS_JS)
    page, outside = open_app(context, store_server[0])
    yield page
    assert outside == []
    context.close()


def done(page: Page, fn_index: int) -> int:
    """How many of that event have completed on the page."""
    return page.evaluate("fn => window.__done(fn)", fn_index)


def wait_for_done(page: Page, fn_index: int, count: int) -> None:
    page.wait_for_function(
        "([fn, count]) => window.__done(fn) >= count",
        arg=[fn_index, count],
        timeout=STATUS_TIMEOUT_MS,
    )


def draw_and_read(page: Page, events: Visitor, strokes: Strokes, label: str) -> None:
    """Draw, see the label, and wait for the new drawing the pen-up makes (the page's own
    event): what Right and Send answer for."""
    before = done(page, events.new_drawing_fn)
    draw_with_mouse(page, strokes)
    assert wait_for_label(page, label) == label
    wait_for_done(page, events.new_drawing_fn, before + 1)


def clear(page: Page, events: Visitor) -> None:
    """Clear, and wait for the new (empty) drawing it makes."""
    before = done(page, events.new_drawing_fn)
    page.locator("#sketchpad button[aria-label='Clear']").click()
    assert wait_for_label(page, app.HINT) == app.HINT
    wait_for_done(page, events.new_drawing_fn, before + 1)


def type_answer(page: Page, text: str) -> None:
    page.locator("#correction").locator("input, textarea").first.fill(text)


def press(page: Page, button: str, fn_index: int) -> str:
    """Click Right or Send (`button`, its selector; `fn_index`, its event) and wait for its
    answer: the status line once it shows what the server said, or whatever it shows after
    the timeout."""
    before = done(page, fn_index)
    page.click(button)
    wait_for_done(page, fn_index, before + 1)
    said = page.evaluate("fn => window.__outputs(fn).at(-1)?.at(-1) ?? null", fn_index)
    try:
        page.wait_for_function(
            "said => document.querySelector('#correction-status')?.innerText.trim() === said",
            arg=said,
            timeout=STATUS_TIMEOUT_MS,
        )
    except PlaywrightTimeout:  # report what it shows instead
        pass
    return page.locator("#correction-status").inner_text().strip()


def wait_until(condition: Callable[[], bool], timeout_s: float, page: Page) -> bool:
    """Whether `condition` held within `timeout_s`, the page running meanwhile."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    return condition()


def pixels(png: bytes) -> np.ndarray:
    """A PNG's pixels, as RGBA."""
    with Image.open(BytesIO(png)) as picture:
        return np.asarray(picture.convert("RGBA"))


def sent_png(url: str) -> bytes:
    """The PNG in a data URL the canvas sent."""
    assert url.startswith(preprocess.PNG_DATA_URL)
    return base64.b64decode(url.removeprefix(preprocess.PNG_DATA_URL))


def test_draw_send_the_truth_then_right_on_another_drawing(page, events, store_server, reader):
    """In Chromium: nothing is stored by drawing; Send stores the typed truth with the
    reading shown, the model's sha256 and the picture that was read; a second answer
    replaces the first; after Clear there is nothing to answer; Right on a new drawing
    stores the reading's own text; a malformed answer is not sent."""
    _, db = store_server
    before = last_id(db)
    sent = record_events(page)
    right = functools.partial(press, page, "#correction-right", events.right_fn)
    send = functools.partial(press, page, "#correction-send", events.send_fn)
    assert right() == app.NOTHING_TO_ANSWER  # nothing drawn yet

    draw_and_read(page, events, SEVEN, "7")
    assert stored(db, before) == []  # nothing is stored until a button is pressed
    type_answer(page, "1")
    assert send() == thanks("1")
    (row,) = stored(db, before)
    shown = page.evaluate("fn => window.__outputs(fn).at(-1)", events.canvas_fn)[2]
    assert row["label"] == "1" and row["status"] == "new"
    assert json.loads(row["reading"]) == shown and shown["text"] == "7"
    assert row["model"] == corrections.model_sha256(WEIGHTS_PATH)
    pen_up = [e["data"][0] for e in sent if e["fn"] == events.canvas_fn][-1]
    assert pen_up["pen_up"] is True
    assert row["picture"][:8] == corrections.PNG_SIGNATURE
    assert np.array_equal(pixels(row["picture"]), pixels(sent_png(pen_up["png"])))
    with Image.open(BytesIO(row["picture"])) as picture:
        assert json.loads(json.dumps(reader.read(picture).as_json())) == shown

    assert right() == thanks("7")  # a second answer for the same drawing replaces the first
    (replaced,) = stored(db, before)
    assert replaced["id"] == row["id"] and replaced["label"] == "7"

    clear(page, events)
    assert right() == app.NOTHING_TO_ANSWER
    type_answer(page, "3")
    assert send() == app.NOTHING_TO_ANSWER
    assert len(stored(db, before)) == 1

    draw_and_read(page, events, ZERO, "0")
    assert right() == thanks("0")
    first, second = stored(db, before)
    assert (first["label"], second["label"]) == ("7", "0")
    assert json.loads(second["reading"])["text"] == "0"

    type_answer(page, "abc")
    assert send() == f"Not sent: {corrections.LABEL_RULE}."
    assert [r["label"] for r in stored(db, before)] == ["7", "0"]


def test_the_last_answer_sent_is_stored_while_the_first_is_being_saved(page, events, store_server):
    """In Chromium: Send "1", and while it waits for the store (another program holds the
    lock, well under the busy timeout), Send "4": the store keeps "4"."""
    _, db = store_server
    before = last_id(db)
    sent = record_events(page)
    draw_and_read(page, events, SEVEN, "7")

    def sends() -> int:
        return sum(e["fn"] == events.send_fn for e in sent)

    with closing(sqlite3.connect(db, isolation_level=None)) as lock:
        lock.execute("BEGIN EXCLUSIVE")
        type_answer(page, "1")
        page.click("#correction-send")
        wait_until(lambda: sends() == 1, SECOND_CLICK_S, page)
        type_answer(page, "4")
        page.click("#correction-send")
        wait_until(lambda: sends() == 2, SECOND_CLICK_S, page)
        lock.execute("ROLLBACK")
    wait_for_done(page, events.send_fn, sends())
    assert [r["label"] for r in stored(db, before)] == ["4"]


def test_sixteen_visitors_answering_at_once_lose_nothing(store_server):
    """Over HTTP, each in its own thread and session, new drawings answered one after
    another: every answer is acknowledged, and every acknowledged one is a row."""
    url, db = store_server
    before = last_id(db)
    visitors = [visitor_with_a_drawing(url) for _ in range(VISITORS)]
    start = threading.Barrier(VISITORS)
    acknowledged: list[str] = []  # the labels of the answers thanked for
    refused: list[str] = []  # what the others were told

    def answer_all(k: int, visitor: Visitor) -> None:
        start.wait()
        for j in range(ANSWERS_EACH):
            label = f"{k:02d}{j:02d}"  # each answer its own
            if j:
                visitor.new_drawing()
            status = status_of(visitor.answer(label))
            if status == thanks(label):
                acknowledged.append(label)
            else:
                refused.append(status)

    run_threads(answer_all, visitors)
    assert refused == [] and len(acknowledged) == VISITORS * ANSWERS_EACH
    assert sorted(row["label"] for row in stored(db, before)) == sorted(acknowledged)
    assert integrity(db) == "ok"


def run_threads(work: Callable[[int, Visitor], None], visitors: list[Visitor]) -> None:
    """`work(k, visitor)` for each visitor in its own thread; the visitors closed after."""
    threads = [threading.Thread(target=work, args=(k, v)) for k, v in enumerate(visitors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for visitor in visitors:
        visitor.close()


def test_answers_saved_out_of_order_keep_the_last_one_sent(store_server):
    """The page numbers its answers; sequence 2 saved before sequence 1: the row keeps 2."""
    url, db = store_server
    before = last_id(db)
    visitor = visitor_with_a_drawing(url)
    assert status_of(visitor.answer("2", sequence=2)) == thanks("2")
    visitor.answer("1", sequence=1)
    visitor.close()
    (row,) = stored(db, before)
    assert (row["label"], row["sequence"]) == ("2", 2)


def test_an_answer_saved_after_a_later_one_does_not_say_it_was_kept(store_server):
    """Sequence 1 saved after sequence 2: it changes nothing, and must not say it was kept."""
    url, _ = store_server
    visitor = visitor_with_a_drawing(url)
    visitor.answer("2", sequence=2)
    status = status_of(visitor.answer("1", sequence=1))
    visitor.close()
    assert "“1”" not in status


def test_a_malformed_answer_counter_gets_a_message(store_server):
    """Not the page's own counter: a request made by hand. A short message, no error."""
    url, _ = store_server
    visitor = visitor_with_a_drawing(url)
    answers = {repr(sequence): visitor.answer("7", sequence) for sequence in (10**20, "x")}
    visitor.close()
    assert {k: m["success"] for k, m in answers.items()} == dict.fromkeys(answers, True)


def test_the_31st_new_answer_of_a_page_in_a_minute_is_refused_replacing_is_not_counted(
    store_server,
):
    """One page: a new answer replaced REPLACED times, then new drawings up to the page's
    limit, all kept; the next new one is refused, a replacement is still kept, and another
    page is not refused."""
    url, db = store_server
    before = last_id(db)
    visitor = visitor_with_a_drawing(url)
    for k in range(REPLACED + 1):  # one new answer, then answers that replace it
        assert status_of(visitor.answer(str(k))) == thanks(str(k))
    for k in range(1, PAGE_LIMIT):  # new drawings up to the limit
        visitor.new_drawing()
        assert status_of(visitor.answer(str(100 + k))) == thanks(str(100 + k)), k
    assert status_of(visitor.answer("99")) == thanks("99")  # replacing: still fine
    visitor.new_drawing()
    assert status_of(visitor.answer("7")) == app.TOO_MANY_ANSWERS
    visitor.close()
    assert len(stored(db, before)) == PAGE_LIMIT
    other = visitor_with_a_drawing(url)  # another page is not refused
    assert status_of(other.right()) == thanks("7")
    other.close()


def test_a_server_killed_with_sigkill_keeps_every_acknowledged_answer(tmp_path):
    """Visitors answer in threads; the server is killed with SIGKILL among their writes.
    Every answer it acknowledged is in the store, and the file is intact."""
    db = tmp_path / "corrections.sqlite3"
    acknowledged: list[str] = []
    with serve(environ={"CORRECTIONS_DB": str(db)}) as url:
        visitors = [visitor_with_a_drawing(url) for _ in range(KILLED_VISITORS)]

        def answer_until_gone(k: int, visitor: Visitor) -> None:
            for j in range(10_000):  # a bound, should the kill never come
                label = f"{k + 1}{j:05d}"
                try:
                    visitor.new_drawing()
                    status = status_of(visitor.answer(label))
                except (httpx.HTTPError, RuntimeError, ValueError):  # the server is gone
                    return
                if status == thanks(label):
                    acknowledged.append(label)

        answering = threading.Thread(target=run_threads, args=(answer_until_gone, visitors))
        answering.start()
        deadline = time.monotonic() + KILL_DEADLINE_S
        while len(acknowledged) < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.01)
        server_process(url).send_signal(signal.SIGKILL)
        answering.join()
    assert len(acknowledged) >= KILL_AFTER
    labels = {row["label"] for row in stored(db)}
    assert set(acknowledged) <= labels
    assert integrity(db) == "ok"


def shown_status(url: str) -> str | None:
    """The answers' status line as the page loads it (None when there is none)."""
    config = httpx.get(url + "config").json()
    found = [c for c in config["components"] if c["props"].get("elem_id") == "correction-status"]
    return found[0]["props"]["value"] if found else None


def answers_are_off(url: str) -> str:
    """Reading works, and the page and every answer say that corrections are off, and why
    (the status line, the same each time)."""
    visitor = visitor_with_a_drawing(url)  # reading works
    answered = [status_of(visitor.answer("7")), status_of(visitor.right())]
    visitor.close()
    status = shown_status(url)
    assert status.startswith(corrections.OFF_PREFIX)
    assert answered == [status, status]
    return status


def test_a_store_below_a_regular_file_turns_answers_off(tmp_path):
    """Its folder cannot be made, even by root: a regular file is where a folder must be."""
    blocker = tmp_path / "a-file"
    blocker.write_text("a regular file, where the store's folder would be")
    db = blocker / "data" / "corrections.sqlite3"
    with serve(environ={"CORRECTIONS_DB": str(db)}) as url:
        assert "folder" in answers_are_off(url)
    assert blocker.read_text().startswith("a regular file")


def test_a_file_that_is_not_a_database_turns_answers_off_and_is_left_alone(tmp_path):
    db = tmp_path / "corrections.sqlite3"
    db.write_bytes(GARBAGE)
    with serve(environ={"CORRECTIONS_DB": str(db)}) as url:
        assert "not a SQLite database" in answers_are_off(url)
    assert db.read_bytes() == GARBAGE


def test_corrections_db_off_hides_the_panel_and_reading_works():
    """No store: none of the panel's elem_ids is on the page, and no answer event."""
    with serve(environ={"CORRECTIONS_DB": corrections.OFF}) as url:
        config = httpx.get(url + "config").json()
        visitor = Visitor(url)
        assert visitor.send(SEVEN_URL, pen_up=True)["output"]["data"][0]["label"] == "7"
        visitor.close()
    elem_ids = {c["props"].get("elem_id") for c in config["components"]}
    assert elem_ids.isdisjoint(PANEL)
    assert (visitor.new_drawing_fn, visitor.right_fn, visitor.send_fn) == (None, None, None)


def test_a_locked_store_says_the_answer_could_not_be_saved_and_the_server_goes_on(tmp_path):
    """Another connection holds the write lock (BEGIN EXCLUSIVE): the answer gets a clear
    message once the busy timeout has passed, the page reads meanwhile, and once the lock is
    gone the same answer is kept."""
    db = tmp_path / "corrections.sqlite3"
    with serve(environ={"CORRECTIONS_DB": str(db)}) as url:
        visitor, reading = visitor_with_a_drawing(url), Visitor(url)
        finished: dict[str, float] = {}
        with closing(sqlite3.connect(db, isolation_level=None)) as lock:
            lock.execute("BEGIN EXCLUSIVE")
            began = time.monotonic()

            def answer() -> None:
                finished["status"] = status_of(visitor.answer("7"))
                finished["answer"] = time.monotonic() - began

            waiting = threading.Thread(target=answer)
            waiting.start()
            assert reading.send(SEVEN_URL, pen_up=True)["output"]["data"][0]["label"] == "7"
            finished["reading"] = time.monotonic() - began
            waiting.join()
            lock.execute("ROLLBACK")
        assert finished["status"].startswith(corrections.NOT_SAVED)
        assert "busy" in finished["status"]
        assert finished["reading"] < finished["answer"]  # read while the answer waited
        assert finished["answer"] < corrections.BUSY_TIMEOUT_S + BUSY_SLACK_S
        assert stored(db) == []
        assert status_of(visitor.answer("7")) == thanks("7")  # the server goes on
        visitor.close()
        reading.close()
    assert [row["label"] for row in stored(db)] == ["7"]
