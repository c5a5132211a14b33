"""Headless Chromium as the browser tests and benchmarks launch it, the windows they use,
and how they draw on the page's canvas and read its label.

Debian's Chromium (apt), driven by Playwright; `playwright install` is never needed.
"""

import contextlib
import json
import math
from collections.abc import Iterator

from playwright.sync_api import Browser, Page, sync_playwright

import app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 412, "height": 915}
CANVAS = "#sketchpad canvas"
LABEL_TIMEOUT_MS = 15_000  # a busy 2-core machine

# Digits as a hand draws them: strokes of (x, y) points, as fractions of the drawing area.
SEVEN = [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]]
ZERO = [
    [
        (0.5 + 0.22 * math.sin(a), 0.5 - 0.32 * math.cos(a))
        for a in (2 * math.pi * k / 24 for k in range(25))
    ]
]
FOUR = [[(0.55, 0.15), (0.25, 0.6), (0.75, 0.6)], [(0.6, 0.35), (0.6, 0.9)]]


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, for as long as the block runs."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_app(context, url: str) -> tuple[Page, list[str]]:
    """The app's page, loaded, with every request off loopback refused and recorded."""
    page = context.new_page()
    outside = []

    def only_loopback(route):
        if route.request.url.startswith((url, "data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    page.goto(url)
    page.wait_for_selector(CANVAS)
    wait_for_label(page, app.HINT)
    return page, outside


def drawing_surface(page: Page) -> tuple[float, float, float, float]:
    """Left, top, width and height, in page pixels, of the canvas: the whole of it draws."""
    box = page.locator(CANVAS).bounding_box()
    return box["x"], box["y"], box["width"], box["height"]


def drawing_area(page: Page) -> tuple[float, float, float]:
    """Left, top and side, in page pixels, of a square well inside the drawing surface."""
    return number_areas(page, 1)[0]


def number_areas(page: Page, count: int) -> list[tuple[float, float, float]]:
    """Left, top and side of `count` squares side by side across the surface, one a digit."""
    left, top, width, height = drawing_surface(page)
    slot = width / count
    side = 0.8 * min(slot, height)
    top += (height - side) / 2
    return [(left + i * slot + (slot - side) / 2, top, side) for i in range(count)]


def draw_with_mouse(page: Page, strokes, area: tuple[float, float, float] | None = None) -> None:
    left, top, side = area or drawing_area(page)
    for stroke in strokes:
        points = [(left + x * side, top + y * side) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=2)
        page.mouse.up()


def draw_with_finger(page: Page, strokes, area: tuple[float, float, float] | None = None) -> None:
    """Touch events as a phone sends them (Playwright's own touch API only taps)."""
    cdp = page.context.new_cdp_session(page)
    left, top, side = area or drawing_area(page)
    for stroke in strokes:
        points = [(left + x * side, top + y * side) for x, y in stroke]
        path = [points[0]]
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            path += [(x0 + (x1 - x0) * t / 4, y0 + (y1 - y0) * t / 4) for t in range(1, 5)]
        for kind, (x, y) in [("touchStart", path[0])] + [("touchMove", p) for p in path[1:]]:
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def record_events(page: Page) -> list[dict]:
    """Every event the page sends to the queue, as {"fn": fn_index, "data": [...]}, in order;
    and every upload, as {"fn": "upload"}."""
    sent = []

    def on_request(request):
        if "/queue/join" in request.url:
            body = json.loads(request.post_data)
            sent.append({"fn": body["fn_index"], "data": body["data"]})
        elif "/upload" in request.url:
            sent.append({"fn": "upload"})

    page.on("request", on_request)
    return sent


def wait_for_label(page: Page, text: str) -> str:
    """The label's headline once it reads `text`, or whatever it reads after the timeout."""
    label = page.locator("#prediction .output-class")
    try:
        page.wait_for_function(
            "text => document.querySelector('#prediction .output-class')?.innerText === text",
            arg=text,
            timeout=LABEL_TIMEOUT_MS,
        )
    except Exception:  # report what it reads instead, below
        pass
    return label.inner_text() if label.count() else "(no label)"
