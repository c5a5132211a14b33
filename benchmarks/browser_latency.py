"""Pen-up to label in headless Chromium: how long a visitor waits after lifting the pen.

    flock /tmp/cpu.lock .venv/bin/python benchmarks/browser_latency.py [--strokes 10]

Side by side, in one run: the app as shipped, and the same predict function behind a
Sketchpad left at Gradio's defaults (800x800 canvas, layers, progress shown...). Each
round clears the canvas, draws a 7 with the mouse and times, in the page, from the
pointerup event to the label's change. The split shows where the time goes: the browser
exporting the canvas (until its first upload), Gradio's further round trips before the
prediction is requested, then the request itself.
"""

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from live_server import serve  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from test_browser import CHROMIUM, CHROMIUM_ARGS, SEVEN, drawing_area  # noqa: E402

import app  # noqa: E402

DEFAULT_SKETCHPAD_APP = """
import gradio as gr
import app

with gr.Blocks() as demo:
    sketch = gr.Sketchpad(elem_id="sketchpad")  # the id lets SELECT_BRUSH_JS find it
    outputs = [gr.Label(elem_id="prediction"), gr.Image(), gr.JSON()]
    sketch.change(lambda v: app.answer(v and v["composite"]), sketch, outputs, postprocess=False)
demo.launch(js=app.SELECT_BRUSH_JS)
"""

# Times, in ms from pointerup, of the label's change and of each request the page made.
INSTRUMENT = """() => {
  const block = document.querySelector('#prediction');
  const headline = () => block.querySelector('.output-class')?.innerText || '';
  window.stroke = {up: null, label: null};
  addEventListener('pointerup', () => {
    performance.clearResourceTimings();
    window.stroke = {up: performance.now(), label: null, text: headline()};
  }, true);
  new MutationObserver(() => {  // the headline's new answer; not the pending state's blank
    const s = window.stroke, text = headline();
    if (s.up !== null && s.label === null && text && text !== s.text) s.label = performance.now();
  }).observe(block, {childList: true, subtree: true, characterData: true});
}"""
TIMINGS = """() => {
  const s = window.stroke, since = t => t - s.up;
  const requests = performance.getEntriesByType('resource').filter(e => e.startTime >= s.up);
  const first = part => requests.find(e => e.name.includes(part));
  return {label: since(s.label),
          export: first('component_server') && since(first('component_server').startTime),
          request: first("queue/join") && since(first("queue/join").startTime)};
}"""


def time_strokes(browser, url: str, strokes: int, canvas_size: tuple[int, int]) -> list[dict]:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(url)
    page.wait_for_selector("#sketchpad canvas, [data-testid='image'] canvas")
    page.wait_for_timeout(1000)
    page.evaluate(INSTRUMENT)
    clear = page.locator("button[aria-label='Clear canvas']").first
    results = []
    for _ in range(strokes + 1):  # the first stroke warms up, and is dropped
        clear.click()
        page.wait_for_function(
            "h => document.querySelector('#prediction').innerText.includes(h)", arg=app.HINT
        )
        page.wait_for_selector("button[aria-label='Brush'].highlight")  # reselected after Clear
        page.wait_for_timeout(300)
        left, top, side = drawing_area(page, canvas_size)
        points = [(left + x * side, top + y * side) for x, y in SEVEN[0]]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=8)
        page.mouse.up()
        page.wait_for_function("() => window.stroke.label !== null", timeout=30_000)
        results.append(page.evaluate(TIMINGS))
    page.close()
    return results[1:]


def summary(results: list[dict]) -> str:
    def median(key):
        values = [r[key] for r in results if r[key] is not None]
        return f"{statistics.median(values):5.0f}" if values else "    -"

    return (
        f"pen-up -> label median {median('label')} ms  (export done at {median('export')}, "
        f"prediction requested at {median('request')})  all: "
        + " ".join(f"{r['label']:.0f}" for r in results)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strokes", type=int, default=10)
    args = parser.parse_args()
    apps = {  # name: command, canvas size
        "shipped app": (None, app.CANVAS_SIZE),
        "default Sketchpad": ([sys.executable, "-c", DEFAULT_SKETCHPAD_APP], (800, 800)),
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name, (command, canvas_size) in apps.items():
            with serve(command) as url:
                results = time_strokes(browser, url, args.strokes, canvas_size)
                print(f"{name:<18} {summary(results)}")
        browser.close()


if __name__ == "__main__":
    main()
