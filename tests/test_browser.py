"""The page as visitors use it: Debian's Chromium driven by Playwright, drawing for real.

No tool is clicked before drawing: the brush must be ready on load and after Clear.
The browser may reach only the app on loopback; any other request is refused and fails
the test, so the page works offline as on a Space.
"""

import math

import pytest
from live_server import ROOT, serve
from playwright.sync_api import Page, sync_playwright

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
SCREENSHOT = ROOT / "docs" / "screenshot.png"
INSIDE_SCREENSHOT = ROOT / "docs" / "inside.png"
INSIDE_PICTURES = {"#saliency img": 280, "#conv1 img": 590, "#conv2 img": 590}  # px wide
BRUSH_SELECTED = "#sketchpad button[aria-label='Brush'].highlight"
LABEL_TIMEOUT_MS = 15_000  # software WebGL on a busy 2-core machine

# Digits as a hand draws them: strokes of (x, y) points, as fractions of the drawing area.
SEVEN = [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]]
ZERO = [
    [
        (0.5 + 0.22 * math.sin(a), 0.5 - 0.32 * math.cos(a))
        for a in (2 * math.pi * k / 24 for k in range(25))
    ]
]
FOUR = [[(0.55, 0.15), (0.25, 0.6), (0.75, 0.6)], [(0.6, 0.35), (0.6, 0.9)]]


@pytest.fixture(scope="module")
def url():
    with serve() as address:
        yield address


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


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
    page.wait_for_selector("#sketchpad canvas")
    page.wait_for_selector(BRUSH_SELECTED)
    wait_for_label(page, app.HINT)
    return page, outside


def drawing_surface(
    page: Page, canvas_size: tuple[int, int] = app.CANVAS_SIZE
) -> tuple[float, float, float, float]:
    """Left, top, width and height, in page pixels, of the sketchpad's drawing surface: the
    canvas at the editor's zoom (it fits the canvas to the column), centred in its element."""
    box = page.locator("#sketchpad canvas").first.bounding_box()
    zoom = float(page.locator("#sketchpad .zoom-number").inner_text().strip(" %")) / 100
    width, height = canvas_size[0] * zoom, canvas_size[1] * zoom
    return (
        box["x"] + (box["width"] - width) / 2,
        box["y"] + (box["height"] - height) / 2,
        width,
        height,
    )


def drawing_area(
    page: Page, canvas_size: tuple[int, int] = app.CANVAS_SIZE
) -> tuple[float, float, float]:
    """Left, top and side, in page pixels, of a square well inside the drawing surface."""
    return number_areas(page, 1, canvas_size)[0]


def number_areas(
    page: Page, count: int, canvas_size: tuple[int, int] = app.CANVAS_SIZE
) -> list[tuple[float, float, float]]:
    """Left, top and side of `count` squares side by side across the surface, one a digit."""
    left, top, width, height = drawing_surface(page, canvas_size)
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


def draw_with_finger(page: Page, strokes) -> None:
    """Touch events as a phone sends them (Playwright's own touch API only taps)."""
    cdp = page.context.new_cdp_session(page)
    left, top, side = drawing_area(page)
    for stroke in strokes:
        points = [(left + x * side, top + y * side) for x, y in stroke]
        path = [points[0]]
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            path += [(x0 + (x1 - x0) * t / 2, y0 + (y1 - y0) * t / 2) for t in range(1, 3)]
        for kind, (x, y) in [("touchStart", path[0])] + [("touchMove", p) for p in path[1:]]:
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


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


def preview_shown(page: Page) -> bool:
    return page.locator("#model-input img").count() > 0


def test_draw_clear_and_draw_again_with_a_mouse(browser, url):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page, outside = open_app(context, url)
    assert not preview_shown(page)

    draw_with_mouse(page, SEVEN)  # no tool clicked first
    assert wait_for_label(page, "7") == "7"
    assert preview_shown(page)

    page.locator("#sketchpad button[aria-label='Clear canvas']").click()
    assert wait_for_label(page, app.HINT) == app.HINT
    page.wait_for_selector("#model-input img", state="detached")
    page.wait_for_selector(BRUSH_SELECTED)  # Gradio drops the tool on Clear; the app reselects

    draw_with_mouse(page, ZERO)  # again no tool clicked: the brush came back after Clear
    assert wait_for_label(page, "0") == "0"
    assert preview_shown(page)
    assert outside == []
    context.close()


def test_write_a_number_with_a_mouse(browser, url):
    """Three digits across the wide canvas, one after the other: the label reads the number
    and the model's view shows the three glyphs side by side."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page, outside = open_app(context, url)
    for digit, area in zip((SEVEN, FOUR, ZERO), number_areas(page, 3), strict=True):
        draw_with_mouse(page, digit, area)
    assert wait_for_label(page, "740") == "740"
    rows = page.locator("#prediction dt").all_inner_texts()  # each digit's best readings
    firsts = [next(row for row in rows if row.startswith(o)) for o in ("1st", "2nd", "3rd")]
    assert firsts == ["1st: 7", "2nd: 4", "3rd: 0"]
    preview = page.locator("#model-input img")
    preview.wait_for()
    assert preview.evaluate("img => img.naturalWidth") == 3 * 28 + 2 * app.GLYPH_GAP
    assert "740" in page.locator("#reading").inner_text()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT)
    assert SCREENSHOT.stat().st_size > 10_000
    assert outside == []
    context.close()


def test_draw_with_a_finger_on_a_phone(browser, url):
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    page, outside = open_app(context, url)
    page.locator("#sketchpad").scroll_into_view_if_needed()
    left, top, width, height = drawing_surface(page)
    assert left >= 0 and left + width <= 390 and height >= 100  # the whole canvas, usable
    draw_with_finger(page, FOUR)
    assert wait_for_label(page, "4") == "4"
    assert preview_shown(page)
    assert outside == []
    context.close()


def test_inside_the_model_follows_the_label(browser, url):
    """Draw a 7: the label first, then the saliency, the two feature-map grids and the top
    classes; Clear takes them away again. The page's screenshot goes in the README."""
    context = browser.new_context(viewport={"width": 1200, "height": 1700})  # the whole page
    page, outside = open_app(context, url)
    assert not any(page.locator(picture).count() for picture in INSIDE_PICTURES)

    draw_with_mouse(page, SEVEN)
    assert wait_for_label(page, "7") == "7"
    for picture, width in INSIDE_PICTURES.items():
        image = page.wait_for_selector(picture, timeout=LABEL_TIMEOUT_MS)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image)
        assert image.evaluate("img => img.naturalWidth") == width, picture
    assert page.locator("#top-classes .output-class").inner_text() == "7"
    assert page.locator("#top-classes .confidence-set").count() == app.TOP_CLASSES
    INSIDE_SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=INSIDE_SCREENSHOT, full_page=True)
    assert INSIDE_SCREENSHOT.stat().st_size > 50_000

    page.locator("#sketchpad button[aria-label='Clear canvas']").click()
    assert wait_for_label(page, app.HINT) == app.HINT
    for picture in INSIDE_PICTURES:
        page.wait_for_selector(picture, state="detached", timeout=LABEL_TIMEOUT_MS)
    assert outside == []
    context.close()
