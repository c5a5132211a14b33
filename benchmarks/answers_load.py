"""Visitors' answers under load: many pages drawing and answering at once, nothing lost.

    flock /tmp/cpu.lock .venv/bin/python -m benchmarks.answers_load [--visitors 16] [--answers 20]

Starts `python app.py` on a fresh store (a real SQLite file in a temporary folder). Each
visitor is a thread of this process with its own page (session), over HTTP with the page's
own events (harness.visitor): it draws a digit (the picture at pen-up, read by the server,
then the new drawing the page asks for) and answers it; every ANSWERS_PER_DRAWING-th answer
is for a new drawing, the others replace the answer before (as a visitor who changes their
mind). Each answer has a label of its own, so the store shows which ones it kept.

Prints the machine (CPU model and cores), answers stored per second (acknowledged answers
over the wall time of the whole run, drawings included), p50 and p90 of an answer's round
trip (Send pressed to its status line), the server's CPU per answer, answers refused by the
rate limits, and how many were lost: acknowledged as kept, yet missing from the store as
their drawing's last answer. That must be 0 (exit status 1 otherwise), and the file must
pass `PRAGMA integrity_check`.

Rate limits: a page may give corrections.ANSWERS_PER_PAGE_PER_MINUTE new answers a minute
and all pages corrections.ANSWERS_PER_MINUTE; the defaults (16 x 10 new answers) stay under
both. More answers are refused and counted as such, not as lost.
"""

import argparse
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

import app
from harness.drawn import draw
from harness.server import cpu_seconds, serve, server_process
from harness.visitor import Visitor, data_url, status_of
from mnist import DATA_DIR, load_mnist

ANSWERS_PER_DRAWING = 2  # a new answer, then one that replaces it
PEN_FRACTION = 0.12  # the canvas's pen (app.BRUSH_RADIUS) on a digit of the canvas's height
THANKS = "Thank you: kept as “{}”."  # app.Answers.keep's status line for a kept answer


@dataclass
class Tally:
    """What every visitor saw, gathered under one lock."""

    latencies: list[float] = field(default_factory=list)  # seconds, each answer's round trip
    final: dict[tuple[int, int], str] = field(default_factory=dict)  # (visitor, drawing): label
    acknowledged: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # status line: how many
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, key: tuple[int, int], label: str, status: str, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if status == THANKS.format(label):
                self.acknowledged += 1
                self.final[key] = label  # the drawing's last answer kept
            else:
                self.refused[status] = self.refused.get(status, 0) + 1


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo) and the cores this process may use."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {len(os.sched_getaffinity(0))} cores"
    return f"unknown CPU, {len(os.sched_getaffinity(0))} cores"


def canvas_pictures(count: int) -> list[str]:
    """`count` MNIST test digits redrawn on the page's canvas (white, 560x280), as the PNG
    data URLs the canvas sends at pen-up."""
    images, _ = load_mnist(DATA_DIR, train=False)
    rng = np.random.default_rng(0)
    pictures = []
    for digit in images[:count].numpy():
        drawn = draw(digit, rng, PEN_FRACTION, canvas_size=app.CANVAS_SIZE).convert("RGBA")
        white = Image.new("RGBA", app.CANVAS_SIZE, "white")
        pictures.append(data_url(Image.alpha_composite(white, drawn).convert("RGB")))
    return pictures


def visit(
    url: str, k: int, answers: int, pictures: list[str], tally: Tally, start: threading.Barrier
) -> None:
    """Visitor `k`: `answers` answers, a new drawing every ANSWERS_PER_DRAWING of them."""
    visitor = Visitor(url)
    start.wait()
    for i in range(answers):
        drawing = i // ANSWERS_PER_DRAWING
        if i % ANSWERS_PER_DRAWING == 0:
            visitor.send(pictures[(k + drawing) % len(pictures)], pen_up=True)
            visitor.new_drawing()
        label = f"{k + 1:03d}{i:04d}"  # each answer its own label
        began = time.perf_counter()
        status = status_of(visitor.answer(label))
        tally.record((k, drawing), label, status, time.perf_counter() - began)
    visitor.close()


def stored_labels(db: Path) -> tuple[set[str], int, str]:
    """The store's labels, its row count, and SQLite's integrity check."""
    with closing(sqlite3.connect(db)) as connection:
        labels = [label for (label,) in connection.execute("SELECT label FROM corrections")]
        check = connection.execute("PRAGMA integrity_check").fetchone()[0]
    return set(labels), len(labels), check


def run(visitors: int, answers: int) -> int:
    """The benchmark; its exit status (1 when an acknowledged answer was lost)."""
    pictures = canvas_pictures(visitors + answers)
    tally = Tally()
    start = threading.Barrier(visitors + 1)
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "corrections.sqlite3"
        with serve(environ={"CORRECTIONS_DB": str(db)}) as url:
            pid = server_process(url).pid
            threads = [
                threading.Thread(target=visit, args=(url, k, answers, pictures, tally, start))
                for k in range(visitors)
            ]
            for thread in threads:
                thread.start()
            start.wait()
            cpu_before, began = cpu_seconds(pid), time.perf_counter()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - began
            cpu = cpu_seconds(pid) - cpu_before
        labels, rows, check = stored_labels(db)
    lost = sum(label not in labels for label in tally.final.values())
    p50, p90 = statistics.median(tally.latencies), float(np.percentile(tally.latencies, 90))
    print(f"Machine: {cpu_model()}")
    print(
        f"{visitors} visitors x {answers} answers ({ANSWERS_PER_DRAWING} a drawing: new, then "
        f"replacing) in {seconds:.1f} s, drawings included:"
    )
    print(f"  answers stored: {tally.acknowledged / seconds:.1f} a second")
    print(f"  an answer's round trip: p50 {p50 * 1e3:.0f} ms, p90 {p90 * 1e3:.0f} ms")
    print(
        f"  server CPU: {cpu / max(tally.acknowledged, 1) * 1e3:.1f} ms a kept answer "
        "(its drawing's reading included)"
    )
    print(f"  refused: {sum(tally.refused.values())} {tally.refused or ''}".rstrip())
    print(
        f"  lost: {lost} (acknowledged {tally.acknowledged}; {len(tally.final)} drawings, "
        f"{rows} rows); integrity_check: {check}"
    )
    return 0 if lost == 0 and rows == len(tally.final) and check == "ok" else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=16, help="pages answering at once")
    parser.add_argument("--answers", type=int, default=20, help="answers each visitor sends")
    args = parser.parse_args()
    raise SystemExit(run(args.visitors, args.answers))


if __name__ == "__main__":
    main()
