"""The live canvas under load: simulated visitors drawing at once, as the page sends.

    flock /tmp/cpu.lock .venv/bin/python -m benchmarks.live_load [--visitors 16] [--strokes 2000]
        [--parts cpu visitors memory]

Starts `python app.py`, then, each part on the same server:

1. Server CPU per call (its process time over CPU_CALLS calls, one at a time; the median
   of CPU_ROUNDS rounds, the kinds taking turns): a live update (the canvas's private
   event, a PNG data URL, pen down), the update at pen-up (which also makes the picture of
   what the model saw), a `/predict` call through gradio_client (a Sketchpad value, its
   file uploaded first) for the same drawing, and the explanation.
2. Visitors drawing at once, each in its own session: every stroke lasts STROKE_S, with a
   picture every 100 ms, as sketchpad.js sends it; like the page's trigger_mode="always_last",
   a visitor whose answer is late sends only its latest picture. At pen-up the stroke's
   final picture, then the explanation the page asks for. Reports errors, pen-up to label
   p50/p90 (pen-up to the answer for the final picture), and the server's RSS.
3. Memory: 4 visitors draw `--strokes` short strokes in all (two live pictures, the pen-up
   picture and its explanation), each of another digit; the server's RSS after 100 strokes
   and at the end.

The visitors are threads of this process, on the same 2 cores as the server.
"""

import argparse
import base64
import statistics
import tempfile
import threading
import time
from io import BytesIO
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image

import app
from harness.drawn import paint, pixel_strokes
from harness.server import cpu_seconds, rss_mb, serve, server_pid
from harness.visitor import Visitor, data_url
from mnist import DATA_DIR, load_mnist

SEND_EVERY_S = app.SEND_EVERY_MS / 1000
STROKE_S = 3.0  # a long stroke: 30 pictures, then pen-up
CPU_CALLS = 40  # calls timed for the server's CPU, each kind, in each of CPU_ROUNDS rounds
CPU_ROUNDS = 5  # the kinds take turns, round by round: their medians are side by side
MEMORY_VISITORS = 4
PARTS = ("cpu", "visitors", "memory")
MEMORY_CHECKPOINT = 100  # strokes: RSS here, and at the end
DIGIT_HEIGHT = 200  # picture pixels, on the 560x280 canvas


def stroke_frames(digit: np.ndarray, frames: int) -> list[str]:
    """A digit drawn little by little, as the canvas would send it: `frames` data URLs, the
    last one the whole digit. Its pen path is revealed from top to bottom."""
    segments = sorted(pixel_strokes(digit), key=lambda s: (s[:, 1].min(), s[:, 0].min()))
    extent = np.concatenate(segments).max(axis=0) + 1
    scale = DIGIT_HEIGHT / extent.max()
    offset = np.array([(app.CANVAS_SIZE[0] - extent[0] * scale) / 2, 40])
    pictures = []
    for k in range(1, frames + 1):
        canvas = Image.new("RGBA", app.CANVAS_SIZE, "white")
        shown = segments[: max(1, round(len(segments) * k / frames))]
        paint(canvas, [s * scale + offset for s in shown], 2 * app.BRUSH_RADIUS, (0, 0, 0))
        pictures.append(data_url(canvas.convert("RGB")))
    return pictures


def draw_stroke(visitor: Visitor, frames: list[str], explain: bool = True) -> tuple[float, dict]:
    """One stroke in real time: a picture every SEND_EVERY_S while the pen moves, only the
    latest when an answer is late, then the final picture at pen-up (and the explanation).
    Returns pen-up to the final picture's answer (s), and that answer."""
    start = time.perf_counter()
    pen_up_at = start + len(frames) * SEND_EVERY_S
    sent = -1
    while True:
        now = time.perf_counter()
        if now >= pen_up_at:
            break
        due = min(int((now - start) / SEND_EVERY_S), len(frames) - 1)
        if due > sent:
            visitor.fetch_pictures(_check(visitor.send(frames[due], pen_up=False)))
            sent = due
        else:
            time.sleep(min(SEND_EVERY_S, pen_up_at - now) / 4)
    answer = _check(visitor.send(frames[-1], pen_up=True))
    waited = time.perf_counter() - max(pen_up_at, start)
    visitor.fetch_pictures(answer)
    if explain:
        visitor.fetch_pictures(_check(visitor.explain()))
    return waited, answer


class Failed(RuntimeError):
    pass


def _check(message: dict) -> dict:
    if not message["success"]:
        raise Failed(str(message["output"]))
    return message


def server_cpu_per_call(url: str, pid: int, frames: list[str], folder: Path) -> None:
    visitor = Visitor(url)
    png = folder / "drawing.png"
    Image.open(BytesIO(base64.b64decode(frames[-1].split(",", 1)[1]))).save(png)
    client = Client(url, verbose=False, ssl_verify=False)
    sketch = {"background": None, "layers": [], "composite": handle_file(str(png))}
    calls = {  # each with the pictures of its answer downloaded, as the page and a program do
        "live update (canvas event, pen down)": lambda i: visitor.fetch_pictures(
            visitor.send(frames[i % len(frames)], False)
        ),
        "update at pen-up (and what the model saw)": lambda i: visitor.fetch_pictures(
            visitor.send(frames[i % len(frames)], True)
        ),
        "/predict (gradio_client, Sketchpad value)": lambda i: client.predict(
            sketch, api_name="/predict"
        ),
        "explanation at pen-up (State change)": lambda i: visitor.fetch_pictures(visitor.explain()),
    }
    visitor.send(frames[-1], True)  # a picture for the explanation
    for call in calls.values():
        for i in range(5):  # warm up
            call(i)
    cpu_ms, wall_ms = {name: [] for name in calls}, {name: [] for name in calls}
    for _ in range(CPU_ROUNDS):
        for name, call in calls.items():
            before, began = cpu_seconds(pid), time.perf_counter()
            for i in range(CPU_CALLS):
                call(i)
            cpu_ms[name].append((cpu_seconds(pid) - before) / CPU_CALLS * 1e3)
            wall_ms[name].append((time.perf_counter() - began) / CPU_CALLS * 1e3)
    for name in calls:
        cpu = cpu_ms[name]
        print(
            f"  {name:<44} server CPU {statistics.median(cpu):5.1f} ms a call "
            f"(rounds {min(cpu):.1f}-{max(cpu):.1f}; round trip "
            f"{statistics.median(wall_ms[name]):5.1f} ms)"
        )
    visitor.close()


def visitors_at_once(url: str, pid: int, strokes: list[list[str]], labels: list[str], each: int):
    waits, errors, misread, lock = [], [0], [0], threading.Lock()
    rss_peak = [rss_mb(pid)]
    start_line = threading.Barrier(len(strokes) + 1)

    def visit(frames: list[str], label: str) -> None:
        visitor = Visitor(url)
        start_line.wait()
        for _ in range(each):
            try:
                waited, answer = draw_stroke(visitor, frames)
            except (Failed, OSError, ValueError) as e:
                with lock:
                    errors[0] += 1
                print(f"    error: {e}")
                continue
            with lock:
                waits.append(waited)
                misread[0] += answer["output"]["data"][0]["label"] != label
        visitor.close()

    threads = [threading.Thread(target=visit, args=a) for a in zip(strokes, labels, strict=True)]
    for thread in threads:
        thread.start()
    before, began = rss_mb(pid), time.perf_counter()
    start_line.wait()
    while any(t.is_alive() for t in threads):
        rss_peak.append(rss_mb(pid))
        time.sleep(0.2)
    seconds = time.perf_counter() - began
    print(
        f"  {len(strokes)} visitors x {each} strokes of {STROKE_S:.0f} s ({seconds:.0f} s): "
        f"{errors[0]} errors; pen-up to label p50 {statistics.median(waits) * 1e3:4.0f} ms, "
        f"p90 {np.percentile(waits, 90) * 1e3:4.0f} ms, max {max(waits) * 1e3:4.0f} ms "
        f"({misread[0]} final labels not the drawing's digit); server RSS {before:.0f} MB before, "
        f"peak {max(rss_peak):.0f} MB, after {rss_mb(pid):.0f} MB"
    )


def memory_over_strokes(url: str, pid: int, digits: np.ndarray, total: int) -> None:
    """`total` short strokes, each of another MNIST test digit (so that every answer's
    picture of what the model saw is a new file, as with real visitors): the server's RSS
    after MEMORY_CHECKPOINT strokes and at the end."""
    done, lock, at_checkpoint = [0], threading.Lock(), []

    def visit() -> None:
        visitor = Visitor(url)
        while True:
            with lock:
                if done[0] >= total:
                    break
                done[0] += 1
                stroke = done[0]
                if stroke == MEMORY_CHECKPOINT:
                    at_checkpoint.append(rss_mb(pid))
            *drawing, lifted = stroke_frames(digits[stroke % len(digits)], 3)
            for frame in drawing:
                visitor.fetch_pictures(_check(visitor.send(frame, pen_up=False)))
            visitor.fetch_pictures(_check(visitor.send(lifted, pen_up=True)))
            visitor.fetch_pictures(_check(visitor.explain()))
        visitor.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=visit) for _ in range(MEMORY_VISITORS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(
        f"  {total} strokes by {MEMORY_VISITORS} visitors, each a different digit "
        f"({time.perf_counter() - began:.0f} s): server RSS after {MEMORY_CHECKPOINT} strokes "
        f"{at_checkpoint[0]:.0f} MB, after {total} {rss_mb(pid):.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=16)
    parser.add_argument("--each", type=int, default=3, help="strokes each visitor draws at once")
    parser.add_argument("--strokes", type=int, default=2000, help="strokes for the memory part")
    parser.add_argument("--parts", nargs="+", default=PARTS, choices=PARTS)
    args = parser.parse_args()
    images, labels = load_mnist(DATA_DIR, train=False)
    frames = round(STROKE_S / SEND_EVERY_S)
    strokes = [stroke_frames(images[i].numpy(), frames) for i in range(args.visitors)]
    truth = [str(int(labels[i])) for i in range(args.visitors)]
    with serve() as url:
        pid = server_pid()
        if "cpu" in args.parts:
            print(
                f"Server CPU a call, one at a time, a {app.CANVAS_SIZE} drawing: median of "
                f"{CPU_ROUNDS} rounds of {CPU_CALLS} calls"
            )
            server_cpu_per_call(url, pid, strokes[0], Path(tempfile.mkdtemp()))
        if "visitors" in args.parts:
            print("Visitors drawing at once:")
            visitors_at_once(url, pid, strokes, truth, args.each)
        if "memory" in args.parts:
            print("Memory:")
            memory_over_strokes(url, pid, images.numpy(), args.strokes)


if __name__ == "__main__":
    main()
