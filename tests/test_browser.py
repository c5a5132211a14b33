"""The page as visitors use it: Debian's Chromium driven by Playwright, drawing for real.

No tool is clicked before drawing: the canvas is ready on load and after Clear.
The browser may reach only the app on loopback; any other request is refused and fails
the test, so the page works offline as on a Space.
"""

import base64
from io import BytesIO

import pytest
from PIL import Image
from playwright.sync_api import Page

import app
from harness.browser import (
    CANVAS,
    DESKTOP,
    FOUR,
    LABEL_TIMEOUT_MS,
    PHONE,
    SEVEN,
    ZERO,
    chromium,
    draw_with_finger,
    draw_with_mouse,
    drawing_area,
    drawing_surface,
    number_areas,
    open_app,
    record_events,
    wait_for_label,
)
from harness.server import ROOT, serve
from harness.visitor import Visitor

SCREENSHOT = ROOT / "docs" / "screenshot.png"
INSIDE_SCREENSHOT = ROOT / "docs" / "inside.png"
INSIDE_PICTURES = {"#saliency img": 280, "#conv1 img": 590, "#conv2 img": 590}  # px wide


@pytest.fixture(scope="module")
def url():
    with serve() as address:
        yield address


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


def fn_indices(url: str) -> tuple[int, int]:
    """The fn_index of the canvas's event and of the explanation that follows a stroke."""
    visitor = Visitor(url)
    visitor.close()
    return visitor.canvas_fn, visitor.explain_fn


def picture_size(value: dict) -> tuple[int, int]:
    """Width and height of the PNG in a canvas value, from its header."""
    data = base64.b64decode(value["png"].split(",", 1)[1])
    with Image.open(BytesIO(data)) as picture:
        return picture.size


def ink_at(page: Page, x: float, y: float) -> bool:
    """Whether the visible canvas is dark at page point (x, y)."""
    return page.evaluate(
        """([x, y]) => {
          const canvas = document.querySelector('#sketchpad canvas');
          const box = canvas.getBoundingClientRect();
          const px = Math.round((x - box.left) * canvas.width / box.width);
          const py = Math.round((y - box.top) * canvas.height / box.height);
          return canvas.getContext('2d').getImageData(px, py, 1, 1).data[0] < 128;
        }""",
        [x, y],
    )


def preview_shown(page: Page) -> bool:
    return page.locator("#model-input img").count() > 0


def wait_for_preview(page: Page) -> bool:
    """Whether what the model saw is shown, once the answer at pen-up has come (a live
    answer during the stroke can show the label before it)."""
    try:
        page.wait_for_selector("#model-input img", timeout=LABEL_TIMEOUT_MS)
    except Exception:
        return False
    return True


def canvas_is_blank(page: Page) -> bool:
    return page.evaluate(
        """() => {
          const canvas = document.querySelector('#sketchpad canvas');
          const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
          return pixels.data.every(v => v === 255);
        }"""
    )


def test_draw_clear_twice_and_draw_again_with_a_mouse(browser, url):
    context = browser.new_context(viewport=DESKTOP)
    page, outside = open_app(context, url)
    assert not preview_shown(page)

    draw_with_mouse(page, SEVEN)  # no tool picked first
    assert wait_for_label(page, "7") == "7"
    assert wait_for_preview(page)

    for _ in range(2):  # Clear, and Clear again on the blank canvas
        page.locator("#sketchpad button[aria-label='Clear']").click()
        assert wait_for_label(page, app.HINT) == app.HINT
        page.wait_for_selector("#model-input img", state="detached")
        assert canvas_is_blank(page)

    draw_with_mouse(page, ZERO)  # again no tool picked: ready after Clear
    assert wait_for_label(page, "0") == "0"
    assert wait_for_preview(page)
    assert outside == []
    context.close()


def test_undo_replays_the_strokes_left(browser, url):
    """A 7 then a 0 read "70"; Undo takes the 0 away, from the canvas and from the reading;
    Undo again leaves a blank canvas, and once more does no harm; then a 4 draws as usual."""
    context = browser.new_context(viewport=DESKTOP)
    page, outside = open_app(context, url)
    undo = page.locator("#sketchpad button[aria-label='Undo']")
    seven, zero = number_areas(page, 2)
    draw_with_mouse(page, SEVEN, seven)
    draw_with_mouse(page, ZERO, zero)
    assert wait_for_label(page, "70") == "70"
    zero_ink = (zero[0] + 0.5 * zero[2], zero[1] + 0.18 * zero[2])  # the top of the 0
    seven_ink = (seven[0] + 0.5 * seven[2], seven[1] + 0.2 * seven[2])  # the 7's bar
    assert ink_at(page, *zero_ink) and ink_at(page, *seven_ink)

    undo.click()
    assert wait_for_label(page, "7") == "7"
    assert not ink_at(page, *zero_ink) and ink_at(page, *seven_ink)
    undo.click()
    assert wait_for_label(page, app.HINT) == app.HINT
    assert canvas_is_blank(page)
    undo.click()  # nothing left to undo
    assert wait_for_label(page, app.HINT) == app.HINT

    draw_with_mouse(page, FOUR)
    assert wait_for_label(page, "4") == "4"
    assert outside == []
    context.close()


def test_the_drawing_stays_across_tabs_and_a_photo_reads_in_upload(
    browser, url, mnist_test, tmp_path
):
    """Draw a 7, read a photo of a real MNIST digit in the Upload tab, come back to Draw: the
    7 is still on the canvas (redrawn at its size), and Undo still takes it away."""
    context = browser.new_context(viewport=DESKTOP)
    page, outside = open_app(context, url)
    draw_with_mouse(page, SEVEN)
    assert wait_for_label(page, "7") == "7"
    left, top, side = drawing_area(page)
    seven_ink = (left + 0.5 * side, top + 0.2 * side)

    images, labels = mnist_test
    photo = tmp_path / "digit.png"
    Image.fromarray(255 - images[1].numpy()).resize((200, 200), Image.BILINEAR).save(photo)
    page.get_by_role("tab", name="Upload").click()
    page.locator("#upload input[type=file]").set_input_files(str(photo))
    assert wait_for_label(page, str(int(labels[1]))) == str(int(labels[1]))

    page.get_by_role("tab", name="Draw").click()
    page.wait_for_selector(CANVAS)
    page.wait_for_function(  # shown again at its size
        "() => document.querySelector('#sketchpad canvas').clientWidth > 100"
    )
    assert ink_at(page, *seven_ink)
    page.locator("#sketchpad button[aria-label='Undo']").click()
    assert wait_for_label(page, app.HINT) == app.HINT
    assert canvas_is_blank(page)
    assert outside == []
    context.close()


def test_write_a_number_with_a_mouse(browser, url):
    """Three digits across the wide canvas, one after the other: the label reads the number
    and the model's view shows the three glyphs side by side. The screenshot goes in the
    README."""
    context = browser.new_context(viewport=DESKTOP)
    page, outside = open_app(context, url)
    for digit, area in zip((SEVEN, FOUR, ZERO), number_areas(page, 3), strict=True):
        draw_with_mouse(page, digit, area)
    assert wait_for_label(page, "740") == "740"
    rows = page.locator("#prediction dt").all_inner_texts()  # each digit's best readings
    firsts = [next(row for row in rows if row.startswith(o)) for o in ("1st", "2nd", "3rd")]
    assert firsts == ["1st: 7", "2nd: 4", "3rd: 0"]
    page.wait_for_function(  # the picture of the three glyphs, loaded
        "width => document.querySelector('#model-input img')?.naturalWidth === width",
        arg=3 * 28 + 2 * app.GLYPH_GAP,
        timeout=LABEL_TIMEOUT_MS,
    )
    page.locator("#reading-json").get_by_text("The reading, for programs").click()  # closed
    assert "740" in page.locator("#reading").inner_text()
    page.locator("#reading-json").get_by_text("The reading, for programs").click()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT)
    assert SCREENSHOT.stat().st_size > 10_000

    top = "#top-classes .output-class"  # inside the model: the first digit, then the second
    page.wait_for_function("s => document.querySelector(s)?.innerText === '7'", arg=top)
    page.locator("#which-digit input").fill("2")
    page.locator("#which-digit input").press("Enter")
    page.wait_for_function("s => document.querySelector(s)?.innerText === '4'", arg=top)
    assert outside == []
    context.close()


def test_draw_with_a_finger_on_a_phone(browser, url):
    """A 412x915 phone at 2.625 device pixels a CSS pixel: the canvas spans the screen with no
    sideways scroll, draws sharp (a device pixel each), a finger draws rather than scrolls,
    and what is sent is still the 560x280 picture."""
    context = browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2.625
    )
    page, outside = open_app(context, url)
    sent = record_events(page)
    canvas_fn, _ = fn_indices(url)
    page.locator(CANVAS).scroll_into_view_if_needed()
    left, top, width, height = drawing_surface(page)
    assert left >= 0 and left + width <= PHONE["width"] and width >= 0.9 * PHONE["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    backing = page.locator(CANVAS).evaluate("c => [c.width, c.height]")
    assert backing == [round(width * 2.625), round(width * 2.625 / 2)]
    scrolled = page.evaluate("window.scrollY")

    draw_with_finger(page, FOUR)
    assert wait_for_label(page, "4") == "4"
    assert wait_for_preview(page)
    assert page.evaluate("window.scrollY") == scrolled  # the finger drew; the page stayed
    pictures = [e["data"][0] for e in sent if e["fn"] == canvas_fn]
    assert pictures and all(picture_size(p) == app.CANVAS_SIZE for p in pictures)
    assert pictures[-1]["pen_up"] is True
    assert outside == []
    context.close()


def test_the_label_follows_the_pen_and_inside_the_model_each_pen_up(browser, url):
    """One long stroke, a 0 drawn over about two seconds: the label answers before the pen
    is lifted, from pictures sent at most every 100 ms, none of them uploaded as files. What
    the model saw shows at pen-up. The explanation runs once, after the pen-up, from the
    server's copy of that picture; Clear takes it away again. The page's screenshot goes in
    the README."""
    context = browser.new_context(viewport={"width": 1280, "height": 1700})  # the whole page
    page, outside = open_app(context, url)
    sent = record_events(page)
    canvas_fn, explain_fn = fn_indices(url)
    assert not any(page.locator(picture).count() for picture in INSIDE_PICTURES)

    left, top, side = drawing_area(page)
    (stroke,) = ZERO
    points = [(left + x * side, top + y * side) for x, y in stroke]
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point, steps=4)
        page.wait_for_timeout(60)
    page.wait_for_function(  # answered while the pen is still down
        "hint => document.querySelector('#prediction .output-class')?.innerText !== hint",
        arg=app.HINT,
        timeout=LABEL_TIMEOUT_MS,
    )
    while_drawing = [e for e in sent if e["fn"] == canvas_fn]
    assert not preview_shown(page)  # what the model saw comes with the answer at pen-up
    page.mouse.up()
    assert wait_for_label(page, "0") == "0"
    assert wait_for_preview(page)
    for picture, width in INSIDE_PICTURES.items():
        image = page.wait_for_selector(picture, timeout=LABEL_TIMEOUT_MS)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image)
        assert image.evaluate("img => img.naturalWidth") == width, picture
    assert page.locator("#top-classes .output-class").inner_text() == "0"
    assert page.locator("#top-classes .confidence-set").count() == app.TOP_CLASSES

    assert len(while_drawing) >= 3 and not any(e["data"][0]["pen_up"] for e in while_drawing)
    live = [e for e in sent if e["fn"] == canvas_fn]
    assert live[-1]["data"][0]["pen_up"] is True
    explained = [e for e in sent if e["fn"] == explain_fn]
    assert explained == [{"fn": explain_fn, "data": [None, 1]}]  # once; the picture not resent
    assert not any(e["fn"] == "upload" for e in sent)
    INSIDE_SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=INSIDE_SCREENSHOT, full_page=True)
    assert INSIDE_SCREENSHOT.stat().st_size > 50_000

    page.locator("#sketchpad button[aria-label='Clear']").click()
    assert wait_for_label(page, app.HINT) == app.HINT
    for picture in INSIDE_PICTURES:
        page.wait_for_selector(picture, state="detached", timeout=LABEL_TIMEOUT_MS)
    assert outside == []
    context.close()
