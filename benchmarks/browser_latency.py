"""Pen-up to label in headless Chromium: how long a visitor waits after lifting the pen.

    flock /tmp/cpu.lock .venv/bin/python -m benchmarks.browser_latency [--digits 50]

Side by side, in one run, two pages reading with the same app.Reader:
- the shipped page: the canvas (sketchpad.js in a gr.HTML), a picture at most every 100 ms
  while the pen moves and one at pen-up, the explanation once a stroke;
- the page before it, on Gradio's Sketchpad (560x280, the same brush), which exports and
  uploads the canvas after each stroke before asking for the label, then the explanation.

For each page, the first `--digits` MNIST test digits, each traced to its pen strokes
(harness.drawn.pen_strokes) and drawn with the mouse, one stroke after the other, after a
Clear. The last stroke is drawn once the page has answered the others, and timed: from its
pointerup to the arrival of the answer to the first event the page sends after it (the
label's; the page's own fetch of Gradio's queue stream is watched). The label the page then
shows is checked against the digit. Then one long stroke (a spiral, about 3 s): how often
the label changes on screen while the pen is down.
"""

import argparse
import statistics
import sys
import time

import numpy as np
from playwright.sync_api import Page, sync_playwright

import app
from harness.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP
from harness.drawn import pen_strokes
from harness.server import serve
from mnist import DATA_DIR, load_mnist

# The page before the canvas: Gradio's Sketchpad as app.py had it, reading with the same
# functions. Its Sketchpad starts with no tool and drops it after Clear: the script presses
# the Brush whenever the "select the draw tool" placeholder shows.
SKETCHPAD_APP = """
import gradio as gr
import app

SELECT_BRUSH_JS = '''() => {
  const selectBrush = () => {
    const pad = document.getElementById("sketchpad");
    if (pad && pad.querySelector(".empty.wrap")) pad.querySelector(".toolbar-wrap button")?.click();
  };
  new MutationObserver(selectBrush).observe(document.body, {childList: true, subtree: true});
  selectBrush();
}'''

reader = app.Reader.load()
with gr.Blocks() as demo:
    sketch = gr.Sketchpad(
        elem_id="sketchpad", canvas_size=app.CANVAS_SIZE, layers=False, transforms=(),
        brush=gr.Brush(default_size=app.BRUSH_RADIUS, colors=["#000000"], color_mode="fixed"),
    )
    label = gr.Label(elem_id="prediction", num_top_classes=10)
    seen, as_json = gr.Image(format="png"), gr.JSON()
    top, saliency, conv1, conv2 = gr.Label(), gr.Image(), gr.Image(), gr.Image()
    drawn = sketch.change(
        reader.predict, sketch, [label, seen, as_json], preprocess=False, postprocess=False,
        show_progress="hidden", trigger_mode="always_last",
    )
    drawn.then(
        reader.explain_drawing, sketch, [top, saliency, conv1, conv2], preprocess=False,
        show_progress="hidden", trigger_mode="always_last",
    )
demo.launch(js=SELECT_BRUSH_JS)
"""

# Before the page's own scripts: the time of every pointerup, of every event the page sends
# (queue/join), and of every event's completion on Gradio's queue stream (queue/data); and
# each change of the label's text.
WATCH = """(() => {
  const t = window.timeline = {ups: [], joins: [], done: {}, labels: [], bytes: []};
  addEventListener('pointerup', () => t.ups.push(performance.now()), true);
  const fetch0 = window.fetch;
  window.fetch = async (input, init) => {
    const url = typeof input === 'string' ? input : input.url;
    const sent = performance.now();
    const body = init?.body;
    const response = await fetch0(input, init);
    if (url.includes('/queue/join')) {
      if (typeof body === 'string') t.bytes.push(body.length);
      response.clone().json().then(j => t.joins.push({at: sent, event: j.event_id}));
    } else if (url.includes('/queue/data') && response.body) {
      const [mine, theirs] = response.body.tee();
      (async () => {
        const reader = mine.getReader(), text = new TextDecoder();
        let buffer = '';
        for (;;) {
          const {done, value} = await reader.read();
          if (done) break;
          buffer += text.decode(value, {stream: true});
          let cut;
          while ((cut = buffer.indexOf('\\n\\n')) >= 0) {
            const line = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
            if (!line.startsWith('data:')) continue;
            const message = JSON.parse(line.slice(5));
            if (message.msg === 'process_completed') t.done[message.event_id] = performance.now();
          }
        }
      })();
      return new Response(theirs, response);
    }
    return response;
  };
  const watchLabel = () => {
    const block = document.querySelector('#prediction');
    if (!block) return setTimeout(watchLabel, 100);
    let last = block.innerText, queued = false;
    const look = () => {  // once a frame: one update changes many nodes
      queued = false;
      if (block.innerText !== last) { last = block.innerText; t.labels.push(performance.now()); }
    };
    new MutationObserver(() => {
      if (!queued) { queued = true; requestAnimationFrame(look); }
    }).observe(block, {childList: true, subtree: true, characterData: true});
  };
  addEventListener('DOMContentLoaded', watchLabel);
})()"""
SETTLED = """() => {  // every event the page sent has been answered
  const t = window.timeline;
  return t.joins.length > 0 && t.joins.every(j => j.event in t.done);
}"""
PEN_UP_TO_ANSWER = """() => {  // ms from the last pointerup to the answer of the next event
  const t = window.timeline, up = t.ups[t.ups.length - 1];
  const next = t.joins.find(j => j.at >= up);
  return next && next.event in t.done ? t.done[next.event] - up : null;
}"""
MOVE_MS = 16  # a mouse reports about once a frame (Playwright adds its own time to each)
LONG_STROKE_S = 3.0
PATH_STEP = 6  # a mouse point every 6th pen-path pixel (1.5 MNIST pixels): a point every few
# screen pixels, and Gradio's Sketchpad repaints its canvas (software WebGL) at every move


def open_page(browser, url: str) -> Page:
    page = browser.new_page(viewport=DESKTOP)
    page.add_init_script(WATCH)
    page.goto(url)
    page.wait_for_selector("#sketchpad canvas")
    page.wait_for_timeout(1000)
    return page


def clear(page: Page, sketchpad: bool) -> None:
    button = "Clear canvas" if sketchpad else "Clear"
    page.locator(f"#sketchpad button[aria-label='{button}']").first.click()
    page.wait_for_function(
        "h => document.querySelector('#prediction').innerText.includes(h)", arg=app.HINT
    )
    if sketchpad:
        page.wait_for_selector("#sketchpad button[aria-label='Brush'].highlight")
    page.wait_for_timeout(300)


def drawing_area(page: Page) -> tuple[float, float, float]:
    """Left, top and side, in page pixels, of a square in the middle of the drawing surface
    (Gradio's Sketchpad shows its canvas at a zoom, centred in a larger element)."""
    box = page.locator("#sketchpad canvas").first.bounding_box()
    zoom = page.locator("#sketchpad .zoom-number")
    scale = float(zoom.inner_text().strip(" %")) / 100 if zoom.count() else None
    height = app.CANVAS_SIZE[1] * scale if scale else box["height"]
    side = 0.8 * height
    return box["x"] + (box["width"] - side) / 2, box["y"] + (box["height"] - side) / 2, side


def stroke(page: Page, points: list[tuple[float, float]]) -> None:
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point)
    page.mouse.up()


def digit_strokes(digit: np.ndarray, area: tuple[float, float, float]) -> list[list]:
    """The digit's pen strokes in page pixels, its longer side 80% of the square, centred,
    a point every PATH_STEP path pixels."""
    left, top, side = area
    strokes = pen_strokes(digit)
    points = np.concatenate(strokes)
    low, extent = points.min(axis=0), np.ptp(points, axis=0).max() + 1
    scale = 0.8 * side / extent
    shift = np.array([left, top]) + (side - np.ptp(points, axis=0) * scale) / 2
    return [[tuple((p - low) * scale + shift) for p in [*s[::PATH_STEP], s[-1]]] for s in strokes]


def time_digits(page: Page, sketchpad: bool, digits, labels) -> tuple[list[float], list[str]]:
    """Pen-up to answer (ms) of each digit's last stroke, and the digits misread ("#index:
    truth -> label shown")."""
    waits, misread = [], []
    for index, (digit, label) in enumerate(zip(digits, labels, strict=True)):
        clear(page, sketchpad)
        strokes = digit_strokes(digit, drawing_area(page))
        for points in strokes[:-1]:
            stroke(page, points)
        page.wait_for_function(SETTLED, timeout=60_000)  # the earlier strokes answered
        stroke(page, strokes[-1])
        page.wait_for_function(f"({PEN_UP_TO_ANSWER})() !== null", timeout=60_000)
        waits.append(page.evaluate(PEN_UP_TO_ANSWER))
        page.wait_for_timeout(100)  # the answer on screen
        shown = page.locator("#prediction .output-class").inner_text()
        if shown != str(label):
            misread.append(f"#{index}: {label} -> {shown!r}")
    return waits, misread


def long_stroke(page: Page, sketchpad: bool) -> tuple[int, int, list[float]]:
    """A spiral of three turns drawn in LONG_STROKE_S, the pen where the clock says: the
    answers that arrived while the pen was down, the label's changes on screen (a frame
    apart at least: one answer can change the label over two frames), and the gaps between
    those (ms, from pen-down to the first, and to pen-up after the last)."""
    clear(page, sketchpad)
    left, top, side = drawing_area(page)

    def at(fraction: float) -> tuple[float, float]:
        turn, radius = 3 * 2 * np.pi * fraction, 0.05 + 0.4 * fraction
        return left + side * (0.5 + radius * np.cos(turn)), top + side * (
            0.5 + radius * np.sin(turn)
        )

    page.mouse.move(*at(0))
    down = page.evaluate("performance.now()")
    page.mouse.down()
    began = time.perf_counter()
    while (elapsed := time.perf_counter() - began) < LONG_STROKE_S:
        page.mouse.move(*at(elapsed / LONG_STROKE_S))
        page.wait_for_timeout(MOVE_MS)
    up = page.evaluate("performance.now()")
    page.mouse.up()
    changes = [t for t in page.evaluate("window.timeline.labels") if down < t < up]
    answers = [t for t in page.evaluate("Object.values(window.timeline.done)") if down < t < up]
    gaps = np.diff([down, *changes, up]).tolist()
    return len(answers), len(changes), gaps


def summary(waits: list[float], misread: list[str]) -> str:
    return (
        f"pen-up -> label median {statistics.median(waits):5.0f} ms, "
        f"p90 {np.percentile(waits, 90):5.0f} ms, max {max(waits):5.0f} ms; "
        f"{len(waits) - len(misread)}/{len(waits)} digits read right "
        f"(misread: {', '.join(misread) or 'none'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=50)
    args = parser.parse_args()
    images, labels = load_mnist(DATA_DIR, train=False)
    digits = [images[i].numpy() for i in range(args.digits)]
    truth = [int(labels[i]) for i in range(args.digits)]
    pages = {"canvas page (shipped)": None, "Sketchpad page (before)": SKETCHPAD_APP}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name, source in pages.items():
            command = None if source is None else [sys.executable, "-c", source]
            with serve(command) as url:
                page = open_page(browser, url)
                waits, misread = time_digits(page, source is not None, digits, truth)
                answers, changes, gaps = long_stroke(page, source is not None)
                sent = page.evaluate("window.timeline.bytes")
                page.close()
            print(f"{name:<24} {summary(waits, misread)}")
            print(
                f"{'':<24} a {LONG_STROKE_S:.0f} s stroke: {answers} answers while the pen was "
                f"down; the label changed {changes} times, longest gap {max(gaps):.0f} ms, "
                f"median {statistics.median(gaps):.0f} ms; "
                f"largest request {max(sent, default=0) / 1000:.1f} KB"
            )
        browser.close()


if __name__ == "__main__":
    main()
