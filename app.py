"""MNIST Sketchpad: draw a digit or a number, see what the ConvNet reads, live.

    python app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / _PORT to change)

Endpoints for programs (see README): `predict` takes a Sketchpad's value, `classify` a
plain image file. Both answer with a label (the reading and its probabilities), the 28x28
picture of each glyph the model was given, and the reading as JSON (reading.py). `explain`
takes a Sketchpad's value too, and which digit, and answers with the top classes and
pictures of the inside of the model (explain.py).

The page draws on a plain <canvas> (sketchpad.js, in a gr.HTML): while the pen moves it sends
the picture as a PNG data URL, at most every SEND_EVERY_MS, and once more at pen-up; each is
read at once (`read_canvas`, a private event) for the label; the answer at pen-up also
shows the glyphs. The value at pen-up goes into a State, whose change explains that same
picture: once a stroke, after its label, with no second upload.
"""

import base64
import ctypes
import functools
import io
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image

import about
import corrections
import explain
import preprocess
import reading
from model import CLASS_NAMES, IMAGE_SIZE, WEIGHTS_PATH, WeightsError, load_model, read_metadata

# The picture's pixels, whatever size the canvas is shown at. 280 high is ten MNIST pixels per
# model pixel for a digit drawn across it; twice as wide leaves room for a number.
CANVAS_SIZE = (560, 280)  # width, height
BRUSH_RADIUS = 9  # picture pixels: a digit drawn across most of the canvas gets MNIST-like strokes
# While the pen moves, a picture at most this often: a label every 0.1 s looks live, and a
# 2-core server keeps up with 16 visitors drawing at once (benchmarks/live_load.py).
SEND_EVERY_MS = 100
SKETCHPAD_JS = (Path(__file__).parent / "sketchpad.js").read_text(encoding="utf-8")
# The canvas sends a PNG of CANVAS_SIZE. Anything much bigger is not our page's: refused
# before decoding (preprocess.read_data_url).
MAX_PICTURE_PIXELS = 4 * CANVAS_SIZE[0] * CANVAS_SIZE[1]
# Predictions at once. benchmarks/load.py on 2 cores, 16 clients: 4 gave the best throughput
# and p99 (1, 2 and 8 were 5-10% slower). Gradio's own GRADIO_DEFAULT_CONCURRENCY_LIMIT
# variable sets another, for other hardware.
CONCURRENCY = int(os.environ.get("GRADIO_DEFAULT_CONCURRENCY_LIMIT", 4))
# Gradio's queue rebuilds its monitoring summary (a pandas table of its last 10,000 events)
# after every event by default: 2 ms of CPU per live update after 1,000 events, 7 ms after
# 10,000. Every 100 events keeps the monitoring page near enough and the live update cheap.
ANALYTICS_CACHE_FREQUENCY = "100"
# Every answer's pictures (what the model saw, the explanation's) are files in Gradio's
# cache: every 10 minutes, Gradio deletes those made over an hour ago, which the pages
# showing them have long loaded.
DELETE_CACHE_S = (600, 3600)  # (how often, age), Blocks(delete_cache=...)
M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
MALLOC_ARENAS = 2  # the server's threads share two heaps: see limit_malloc_arenas
HINT = reading.HINT
NOT_A_DIGIT = "Not a digit"  # the label's headline when any glyph is not a digit
TOP_PER_DIGIT = 2  # a number's label shows each digit's best two readings...
MIN_SHOWN = 0.01  # ...the second only when it has at least 1%
GLYPH_GAP = 2  # pixels of grey between the glyphs the model sees, side by side
GAP_SHADE = 128
# Explanations at once. Each takes about 70 ms of one core (benchmarks/explain_speed.py): one
# at a time leaves the other core to the live labels, which must not wait for them.
EXPLAIN_CONCURRENCY = 1
TOP_CLASSES = 3
# Visitors' answers (corrections.py keeps them). The note says what is kept, before any press.
ANSWER_NOTE = (
    "Wrong? Type what it really is, or press **Right**. Only the drawing and your answer are "
    "kept, nothing about you; answers may be used to improve the model and may be published "
    "as a dataset."
)
ANSWER_PLACEHOLDER = "What is it? 7, 407, not a digit"
NOTHING_TO_ANSWER = "Draw something first: there is nothing to answer yet."
NOTHING_READ = "Nothing was read to be right: type what it is, and press Send."
TOO_MANY_ANSWERS = "Too many answers at once: please wait a minute and send it again."
BAD_COUNTER = "Not sent: the page's answer counter is not a number. Reload the page."
MAX_ANSWER_NUMBER = 2**62  # SQLite's INTEGER holds 2**63 - 1; a page counts far fewer
ANSWER_COUNTER_JS = (  # numbers the page's answers, in the order they are sent (Store.save)
    "(drawing, text, sequence) => "
    "[drawing, text, (window.sketchpadAnswers = (window.sketchpadAnswers || 0) + 1)]"
)
INTRODUCTION = """# MNIST Sketchpad
Draw a digit or a number and watch a small ConvNet, trained on MNIST's handwritten digits, read
it as you draw. Try to fool it: it should say when it is not a digit."""
INSIDE_TEXT = """
**Saliency** (integrated gradients): the ink that made the answer. **Red**: ink that pushed
the model towards its answer; **blue**: ink that pushed it away; the stronger the colour,
the bigger the push. **Feature maps**: where each filter of the two convolution layers
responded to the drawing. **Bright**: the filter responded strongly; black: not at all
(each map on its own scale). The first layer finds edges and pieces of stroke, the second
combines them into larger parts.
"""


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Cap glibc's malloc arenas (mallopt M_ARENA_MAX), before the server starts its threads.

    glibc gives threads their own heaps, up to 8 a core, and gives little of them back:
    each request thread that decodes a PNG or runs the model grows its own. Over 2,000
    strokes (benchmarks/live_load.py --parts memory) the server's RSS grew by 50-100 MB with
    glibc's default, and not at all with 2 arenas (770 MB after 100 strokes, 762 MB after
    2,000), and a live update took less CPU. Elsewhere (macOS, Windows, musl) there is no
    such call, and nothing to do."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's own name for itself, on any distribution
        libc.mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):  # not glibc
        pass


Outputs = tuple[dict, dict | None, dict]  # Label, Image and JSON values, as the page gets them
Explained = tuple[dict[str, float] | str, np.ndarray | None, np.ndarray | None, np.ndarray | None]
Picture = np.ndarray | Image.Image | None


def label_value(r: reading.Reading) -> dict:
    """The Label's value: the reading as its headline; a single glyph's ten probabilities, or
    each digit's best readings by position ("1st: 2"); the message when nothing was read."""
    if not r.probabilities.numel():
        return {"label": r.message, "confidences": None}
    if len(r.glyphs) == 1:
        rows = sorted(zip(CLASS_NAMES, r.probabilities[0].tolist(), strict=True), key=_second)
    else:
        rows = []
        for ordinal, p, sure in zip(reading.ORDINALS, r.probabilities, r.is_digit(), strict=False):
            values, digits = p.topk(TOP_PER_DIGIT)
            for rank, (q, d) in enumerate(zip(values.tolist(), digits.tolist(), strict=True)):
                if rank == 0 or q >= MIN_SHOWN:
                    rows.append((f"{ordinal}: {CLASS_NAMES[d]}" + ("" if sure else " (unsure)"), q))
    return {
        "label": r.text if r.text is not None else NOT_A_DIGIT,
        "confidences": [{"label": name, "confidence": q} for name, q in rows],
    }


def _second(row: tuple[str, float]) -> float:
    return -row[1]  # likeliest first


def seen_image(r: reading.Reading) -> np.ndarray | None:
    """Every glyph's 28x28 model input, left to right, with a grey gap between them; None
    when the model read none (nothing drawn, or too many marks to read)."""
    if not r.probabilities.numel():
        return None
    pieces = []
    for glyph in r.glyphs:
        pieces += [np.full((IMAGE_SIZE, GLYPH_GAP), GAP_SHADE / 255), glyph.input[0, 0].numpy()]
    return (np.hstack(pieces[1:]) * 255).round().astype(np.uint8)


def canvas_picture(value: object) -> Image.Image | None:
    """The live canvas's picture, or ImageError. Its value is {"png": a PNG data URL,
    "pen_up": bool} (sketchpad.js); None before any drawing."""
    if value is None or value == "":
        return None
    url = value.get("png") if isinstance(value, dict) else None
    return preprocess.read_data_url(url, MAX_PICTURE_PIXELS)


def upload_picture(payload: dict | None) -> Image.Image | None:
    """An uploaded file's picture, or ImageError. Gradio has checked the file into its cache;
    preprocess.read_image decodes it once, within a size limit, with a clear message."""
    return None if payload is None else preprocess.read_image(payload["path"])


def decoded_then(
    decode: Callable[[object], Picture],
    value: object,
    use: Callable[[Picture], tuple],
    cannot: Callable[[str], tuple],
) -> tuple:
    """`use` of the picture that `decode` makes of an event's value; `cannot` of the message
    when it is no picture we can read (preprocess.ImageError)."""
    try:
        image = decode(value)
    except preprocess.ImageError as e:
        return cannot(str(e))
    return use(image)


def no_explanation(message: str) -> Explained:
    """The explanation's outputs when there is nothing to explain: a message, no pictures."""
    return (message, None, None, None)


class Reader:
    """The model at its "not a digit" threshold, and every answer the page and the API give
    with it. Its two components are the page's: the picture of what the model saw, whose
    files Gradio serves, and the (hidden) Sketchpad that decodes the API's drawings."""

    def __init__(self, model: torch.nn.Module, min_confidence: float) -> None:
        self.model, self.min_confidence = model, min_confidence
        self.seen = gr.Image(
            label="What the model sees (28x28 a glyph; at each pen-up)",
            elem_id="model-input",
            interactive=False,
            format="png",
            height=160,
            buttons=[],
            render=False,  # placed by build_page
        )
        # Programs send a Sketchpad's value to /predict and /explain, as before this canvas;
        # never shown, the page never changes it.
        self.sketch = gr.Sketchpad(
            visible=False, canvas_size=CANVAS_SIZE, type="numpy", render=False
        )

    @classmethod
    def load(cls, path: Path = WEIGHTS_PATH) -> "Reader":
        """The reader of a weights file. Raises WeightsError, with what to do, for a missing
        or damaged file or one without a valid "not a digit" threshold."""
        model = load_model(path)
        try:
            return cls(model, float(read_metadata(path)["min_confidence"]))
        except (KeyError, ValueError):
            raise WeightsError(
                f"weights file {path} has no valid min_confidence (the 'not a digit' threshold) "
                "in its header: retrain with `python train.py`."
            ) from None

    def read(self, image: Picture) -> reading.Reading:
        """What the picture says, read by the model at its threshold."""
        return reading.read(image, self.model, self.min_confidence)

    def outputs(self, r: reading.Reading) -> Outputs:
        """The three outputs, made here (the events run with postprocess=False) so that the
        Label keeps its headline and the order of its rows: Gradio's own would sort the rows
        and make the likeliest row the headline."""
        image = seen_image(r)
        seen_value = None if image is None else self.seen.postprocess(image).model_dump()
        return label_value(r), seen_value, r.as_json()

    def answer(self, image: Picture) -> Outputs:
        """The page's and the API's answer for a picture."""
        return self.outputs(self.read(image))

    def cannot_read(self, message: str) -> Outputs:
        gr.Warning(message)
        return self.outputs(reading.unreadable(message, self.min_confidence))

    def drawing(self, payload: dict | None) -> np.ndarray | None:
        """The sketchpad value's composite image (what the visitor sees), or ImageError.

        Its events run with preprocess=False and the Sketchpad's own decoding happens here,
        so that a corrupt file sent through the API gets a short message, not a traceback.
        """
        if payload is None:
            return None
        try:
            return self.sketch.preprocess(self.sketch.data_model.model_validate(payload))[
                "composite"
            ]
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            raise preprocess.ImageError(preprocess.UNREADABLE) from None

    def read_canvas(self, value: object) -> tuple[dict, object, dict, object]:
        """The live canvas's event: the label and the JSON for its picture. When the picture
        is done (pen up, Undo, Clear) or cannot be read, also what the model saw, and the
        value again for the explanation. While the pen moves both are left as they were: the
        glyphs follow each stroke and the explanation runs once a stroke, and a live update
        writes and serves no picture file, which was a quarter of its server CPU
        (benchmarks/live_load.py)."""
        done = isinstance(value, dict) and value.get("pen_up") is True
        try:
            r = self.read(canvas_picture(value))
        except preprocess.ImageError as e:
            return (*self.cannot_read(str(e)), value if done else gr.skip())
        if not done:
            return label_value(r), gr.skip(), r.as_json(), gr.skip()
        return (*self.outputs(r), value)

    def predict(self, payload: dict | None) -> Outputs:
        """The Sketchpad's endpoint, for programs."""
        return decoded_then(self.drawing, payload, self.answer, self.cannot_read)

    def classify(self, payload: dict | None) -> Outputs:
        """The upload endpoint: a photo, scan or drawing of a digit or a number, in any
        format."""
        return decoded_then(upload_picture, payload, self.answer, self.cannot_read)

    def explain_drawing(self, payload: dict | None, which: float | None = 1) -> Explained:
        """The explain endpoint: `explain_picture` for a Sketchpad's value."""
        explained = functools.partial(self.explain_picture, which=which)
        return decoded_then(self.drawing, payload, explained, no_explanation)

    def explain_canvas(self, value: object, which: float | None = 1) -> Explained:
        """The page's explanation: `explain_picture` for the live canvas's picture at pen-up."""
        explained = functools.partial(self.explain_picture, which=which)
        return decoded_then(canvas_picture, value, explained, no_explanation)

    def explain_picture(self, image: Picture, which: float | None = 1) -> Explained:
        """Inside the model, for digit number `which` (1: the first) of the picture: the
        class probabilities, the saliency picture and the conv1 and conv2 feature-map grids.
        Without a digit to explain: a message for the label, and no pictures."""
        read = self.read(image)
        inputs = [glyph.input for glyph in read.glyphs] if read.probabilities.numel() else []
        if not inputs:
            return no_explanation(read.message)
        try:
            index = int(1 if which is None else which)
        except (TypeError, ValueError, OverflowError):
            return no_explanation(
                f"Which digit to explain is a number (1: the first), not {which!r}."
            )
        if not 1 <= index <= len(inputs):
            count = f"{len(inputs)} digit" + ("s" if len(inputs) > 1 else "")
            return no_explanation(f"There is no digit {index}: the drawing has {count}.")
        x = inputs[index - 1]
        seen = explain.explain(self.model, x)
        return (
            dict(zip(CLASS_NAMES, seen.probabilities.tolist(), strict=True)),
            explain.saliency_image(x, seen.attributions),
            explain.feature_grid(seen.conv1),
            explain.feature_grid(seen.conv2),
        )


class Answers:
    """What visitors say their drawings really were, kept in the corrections store
    (corrections.py): the page's Right and Send. Only a picture that this server read for
    the page is kept, held server-side in a gr.State, never one sent with the answer.
    `problem` is why answers are not kept (a store that cannot be opened), else None."""

    def __init__(self, reader: Reader, store: "corrections.Store | None", problem: str | None):
        self.reader, self.store, self.problem = reader, store, problem
        self.model_sha256 = corrections.model_sha256(WEIGHTS_PATH) if store else ""
        self.per_page = corrections.RateLimit(corrections.ANSWERS_PER_PAGE_PER_MINUTE)
        self.everyone = corrections.RateLimit(corrections.ANSWERS_PER_MINUTE)

    @classmethod
    def open(cls, reader: Reader, path: Path | None) -> "Answers | None":
        """The answers kept in the store at `path`; None when corrections are off (no
        path: CORRECTIONS_DB=off). A store that cannot be opened gives Answers that say so."""
        if path is None:
            return None
        try:
            return cls(reader, corrections.Store.open(path), None)
        except (corrections.CorrectionsError, OSError) as e:
            print(f"MNIST Sketchpad: {e}", file=sys.stderr)
            return cls(reader, None, str(e))

    @staticmethod
    def canvas_drawing(value: object) -> tuple[dict | None, str]:
        """The drawing to answer for, at the canvas's pen-up: a new random id (each stroke,
        Undo or Clear is a new drawing) and the picture that was read (its PNG data URL,
        decoded again, within the same limits, only when an answer comes)."""
        url = value.get("png") if isinstance(value, dict) else None
        return (new_drawing(url) if isinstance(url, str) else None), ""

    @staticmethod
    def upload_drawing(payload: dict | None) -> tuple[dict | None, str]:
        """The drawing to answer for, for an upload: the pixels that were read, as a PNG (no
        EXIF), shrunk to fit MAX_PICTURE_PIXELS; None when it cannot be read."""
        try:
            image = upload_picture(payload)
        except preprocess.ImageError:
            image = None
        if image is None:
            return None, ""
        if image.size[0] * image.size[1] > MAX_PICTURE_PIXELS:
            shrink = (image.size[0] * image.size[1] / MAX_PICTURE_PIXELS) ** 0.5
            image = image.resize((int(image.size[0] / shrink), int(image.size[1] / shrink)))
        return new_drawing(
            preprocess.PNG_DATA_URL + base64.b64encode(png_bytes(image)).decode()
        ), ""

    def right(self, drawing: dict | None, _text: str, sequence: float, request: gr.Request) -> str:
        """Right: the reading's own text (or "not a digit") is the answer."""
        return self.keep(drawing, None, sequence, request)

    def send(self, drawing: dict | None, text: str, sequence: float, request: gr.Request) -> str:
        """Send: the typed text is the answer, when it is one (corrections.valid_label)."""
        label = corrections.valid_label(text)
        if label is None:
            return f"Not sent: {corrections.LABEL_RULE}."
        return self.keep(drawing, label, sequence, request)

    def keep(
        self, drawing: dict | None, label: str | None, sequence: float, request: gr.Request
    ) -> str:
        """Save an answer for the drawing (`label`, or the reading's own for None) and say
        how it went, in a line for the page."""
        if self.store is None:
            return self.problem or f"{corrections.OFF_PREFIX}."
        number = answer_number(sequence)
        if number is None:
            return BAD_COUNTER
        if drawing is None:
            return NOTHING_TO_ANSWER
        try:
            image = preprocess.read_data_url(drawing["picture"], MAX_PICTURE_PIXELS)
        except preprocess.ImageError:
            return NOTHING_TO_ANSWER
        r = self.reader.read(image)
        if r.status == "empty":
            return NOTHING_TO_ANSWER
        label = label or corrections.read_as_label(r.as_json())
        if label is None:  # Right, where nothing was read (too many marks): nothing to confirm
            return NOTHING_READ
        try:
            if self.store.answer_for(drawing["drawing"]) is None and not self.allowed(request):
                return TOO_MANY_ANSWERS
            self.store.save(
                drawing["drawing"], png_bytes(image), r.as_json(), label, self.model_sha256, number
            )
            kept = self.store.answer_for(drawing["drawing"])  # a later answer may be kept
        except corrections.CorrectionsError as e:
            return str(e)
        return f"Thank you: kept as “{kept}”."

    def allowed(self, request: gr.Request) -> bool:
        """Whether one more new answer fits the page's and everyone's rate limits."""
        page = getattr(request, "session_hash", None) or "no page"
        return self.per_page.allow(page) and self.everyone.allow("everyone")


def answer_number(sequence: object) -> int | None:
    """The page's answer counter (ANSWER_COUNTER_JS) as a whole number, or None when it is
    none: only a hand-made request sends anything else."""
    try:
        number = int(sequence or 0)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 0 <= number <= MAX_ANSWER_NUMBER else None


def new_drawing(picture: str) -> dict:
    """A drawing to answer for: a new random id (not about the visitor) and its picture."""
    return {"drawing": uuid.uuid4().hex, "picture": picture}


def png_bytes(image: Image.Image) -> bytes:
    """The picture's pixels as a PNG, nothing else (no EXIF, no text chunks)."""
    if image.mode not in preprocess.STANDARD_MODES:
        image = image.convert("RGBA")
    buffer = io.BytesIO()
    Image.frombytes(image.mode, image.size, image.tobytes()).save(buffer, format="PNG")
    return buffer.getvalue()


# The canvas fills its column at the picture's shape (its frame a shadow: a border would
# shift the pointer's position), and a finger on it draws instead of scrolling the page.
# The 28x28 preview is enlarged by the browser: keep its pixels crisp.
CSS = """
#sketchpad canvas { display: block; width: 100%; aspect-ratio: 2 / 1; touch-action: none;
  user-select: none; -webkit-user-select: none; cursor: crosshair; background: #fff;
  box-shadow: 0 0 0 1px var(--border-color-primary); border-radius: var(--radius-sm); }
#sketchpad .html-container { padding: 0; }
#sketchpad .tools { display: flex; align-items: center; gap: 8px; margin-top: 8px; }
#sketchpad .tools button { margin: 0; padding: 4px 14px; border-radius: var(--radius-sm);
  font-weight: normal; font-size: var(--button-medium-text-size);
  border: 1px solid var(--border-color-primary);
  background: var(--button-secondary-background-fill); color: var(--button-secondary-text-color); }
#model-input img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }
#inside img { image-rendering: pixelated; }
"""
# On a phone, Gradio's page margins (32 px a side) would take a sixth of the canvas. In the
# page's head: Gradio scopes `css` to the app's contents, and the margins are outside them.
PHONE_MARGINS = (
    "<style>@media (max-width: 600px) { .gradio-container .app { padding: 8px; } }</style>"
)
# The live canvas (sketchpad.js draws on it, sends it, and handles the two buttons).
SKETCHPAD_HTML = """
<canvas aria-label="Draw a digit or a number here"></canvas>
<div class="tools">
  <button type="button" aria-label="Undo">Undo</button>
  <button type="button" aria-label="Clear">Clear</button>
</div>
"""


def build_page(
    reader: Reader, answers: Answers | None = None, weights_path: Path = WEIGHTS_PATH
) -> gr.Blocks:
    """The whole page, reading with `reader`: the canvas and the upload, the reading (and,
    with `answers`, what visitors say it really was), what the model saw, inside the model
    and about it; and the endpoints for programs."""
    with gr.Blocks(
        title="MNIST Sketchpad", analytics_enabled=False, delete_cache=DELETE_CACHE_S
    ) as page:
        gr.Markdown(INTRODUCTION)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=360):  # the phone's column: the canvas, full width
                pad, upload = drawing_tabs(reader)
            with gr.Column(scale=2, min_width=240):
                label = gr.Label(
                    value=HINT,
                    num_top_classes=len(CLASS_NAMES),
                    label="The model reads",
                    elem_id="prediction",
                )
                if answers is not None:
                    drawing, answer_status = answer_panel(answers)
        reader.seen.render()
        with gr.Accordion("The reading, for programs (JSON)", open=False, elem_id="reading-json"):
            as_json = gr.JSON(show_label=False, elem_id="reading")
        picture_done = gr.State()  # the canvas's value at pen-up: what the explanation reads
        which, inside = inside_the_model()
        live = dict(
            outputs=[label, reader.seen, as_json],
            show_progress="hidden",  # a spinner on every update would flicker
            trigger_mode="always_last",  # pictures faster than predictions: answer the latest
            concurrency_id="model",  # the canvas and the endpoints share the model's slots
        )
        io = dict(preprocess=False, postprocess=False)  # both done in the functions and outputs
        # The page: each picture the canvas sends, then the explanation once a stroke.
        pad.change(
            reader.read_canvas,
            inputs=pad,
            **io,
            **(live | {"outputs": [label, reader.seen, as_json, picture_done]}),
            api_visibility="private",
        )
        explained = [picture_done, which]
        picture_done.change(reader.explain_canvas, explained, api_visibility="private", **inside)
        which.change(reader.explain_canvas, explained, api_visibility="private", **inside)
        # Programs.
        sketch = reader.sketch
        sketch.change(reader.predict, inputs=sketch, api_name="predict", **io, **live)
        sketch.change(
            reader.explain_drawing, [sketch, which], api_name="explain", preprocess=False, **inside
        )
        upload.change(reader.classify, inputs=upload, api_name="classify", **io, **live)
        if answers is not None:  # a new drawing to answer for, and no answer yet
            new = dict(outputs=[drawing, answer_status], api_visibility="private")
            picture_done.change(answers.canvas_drawing, picture_done, **new)
            upload.change(answers.upload_drawing, upload, preprocess=False, **new)
        about_the_model(reader.model, weights_path)
    return page.queue(default_concurrency_limit=CONCURRENCY)


def answer_panel(answers: Answers) -> tuple[gr.State, gr.Markdown]:
    """Right, or the truth typed and sent, for the drawing last read (a gr.State the page's
    reading events fill: see canvas_drawing, upload_drawing), with a line on what is kept."""
    drawing = gr.State()  # {"drawing": an id, "picture": the PNG data URL that was read}
    sequence = gr.Number(visible=False, value=0)  # the page's answer counter (ANSWER_COUNTER_JS)
    with gr.Group(elem_id="answers"):
        with gr.Row(equal_height=True):
            right = gr.Button("Right", elem_id="correction-right", scale=0, min_width=80)
            text = gr.Textbox(
                show_label=False,
                placeholder=ANSWER_PLACEHOLDER,
                elem_id="correction",
                max_lines=1,
                scale=3,
            )
            send = gr.Button("Send", elem_id="correction-send", scale=0, min_width=80)
    status = gr.Markdown(answers.problem or "", elem_id="correction-status")
    gr.Markdown(ANSWER_NOTE, elem_id="correction-note")
    answer = dict(
        inputs=[drawing, text, sequence],
        outputs=status,
        js=ANSWER_COUNTER_JS,
        api_visibility="private",
        concurrency_id="answers",
        trigger_mode="multiple",  # a second press while the first is saved is sent: it wins
    )
    right.click(answers.right, **answer)
    send.click(answers.send, **answer)
    text.submit(answers.send, **answer)
    return drawing, status


def drawing_tabs(reader: Reader) -> tuple[gr.HTML, gr.Image]:
    """The Draw tab's live canvas (and the API's hidden Sketchpad) and the Upload tab's
    image."""
    with gr.Tabs():
        with gr.Tab("Draw"):
            gr.Markdown("Draw a digit or a number (digits not touching).")
            pad = gr.HTML(
                html_template=SKETCHPAD_HTML,
                js_on_load=SKETCHPAD_JS,
                elem_id="sketchpad",
                width=CANVAS_SIZE[0],  # props, which sketchpad.js reads
                height=CANVAS_SIZE[1],
                brush_width=2 * BRUSH_RADIUS,
                send_every_ms=SEND_EVERY_MS,
            )
            reader.sketch.render()
        with gr.Tab("Upload"):
            upload = gr.Image(
                label="A photo or scan of a digit or a number",
                elem_id="upload",
                sources=["upload", "clipboard"],
            )
    return pad, upload


def inside_the_model() -> tuple[gr.Number, dict]:
    """The "Inside the model" accordion: which digit to explain, and the settings of the
    events that fill it (its outputs among them)."""
    with gr.Accordion("Inside the model", open=True, elem_id="inside"):
        pictures = dict(interactive=False, format="png", buttons=[])
        with gr.Row(equal_height=False):
            with gr.Column():
                gr.Markdown(INSIDE_TEXT)
                which = gr.Number(
                    value=1,
                    minimum=1,
                    precision=0,
                    label="Which digit to explain (1: the first)",
                    elem_id="which-digit",
                )
                top = gr.Label(
                    num_top_classes=TOP_CLASSES, label="Top classes", elem_id="top-classes"
                )
            saliency = gr.Image(label="Saliency: which ink pushed", elem_id="saliency", **pictures)
        with gr.Row(equal_height=False):
            conv1 = gr.Image(label="Layer 1: 32 feature maps", elem_id="conv1", **pictures)
            conv2 = gr.Image(label="Layer 2: 64 feature maps", elem_id="conv2", **pictures)
    return which, dict(
        outputs=[top, saliency, conv1, conv2],
        show_progress="hidden",
        trigger_mode="always_last",
        concurrency_id="explain",  # its own slots: the live labels never queue behind it
        concurrency_limit=EXPLAIN_CONCURRENCY,
    )


def about_the_model(model: torch.nn.Module, weights_path: Path) -> None:
    """The "About the model" accordion: the layers, the training facts and its report."""
    with gr.Accordion("About the model", open=False, elem_id="about"):
        architecture, training, training_report = about.about_model(model, weights_path)
        with gr.Row():
            gr.Markdown(architecture, elem_id="about-architecture")
            gr.Markdown(training, elem_id="about-training")
        if training_report is not None:
            gr.Markdown("### Training report")
            gr.Image(
                str(training_report),
                show_label=False,
                elem_id="training-report",
                interactive=False,
                buttons=["fullscreen", "download"],
            )


def configure_server() -> None:
    """The serving process's settings, before its threads start: one torch thread a request
    (a 28x28 input is too small to share: cores serve requests instead), two malloc arenas,
    and Gradio's monitoring summary every ANALYTICS_CACHE_FREQUENCY events."""
    torch.set_num_threads(1)
    limit_malloc_arenas()
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", ANALYTICS_CACHE_FREQUENCY)


def start_backups(answers: Answers | None) -> None:
    """On a Space, push snapshots of the store to a private dataset when CORRECTIONS_REPO
    names one (and HF_TOKEN may write it): corrections.start_backups."""
    repo = os.environ.get("CORRECTIONS_REPO", "").strip()
    if not repo or answers is None or answers.store is None:
        return
    try:
        corrections.start_backups(answers.store.path, repo, os.environ.get("HF_TOKEN"))
    except corrections.CorrectionsError as e:
        print(f"MNIST Sketchpad: {e}", file=sys.stderr)


def main() -> None:
    configure_server()
    try:
        reader = Reader.load()
    except WeightsError as e:
        sys.exit(f"MNIST Sketchpad cannot start: {e}")
    answers = Answers.open(reader, corrections.store_path())
    start_backups(answers)
    # No run history: a run per stroke is noise, and each would store the canvas in the browser.
    build_page(reader, answers).launch(css=CSS, head=PHONE_MARGINS, run_history=False)


if __name__ == "__main__":
    main()
