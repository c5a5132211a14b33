"""MNIST Sketchpad: draw a digit, see what the ConvNet reads, live.

    python app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / _PORT to change)

Endpoints, for the page and for programs (see README): `predict` takes the sketchpad's
value, `classify` a plain image file. Both answer with the probabilities of the ten digits
and the 28x28 picture the model was given. `explain` takes the sketchpad's value too and
answers with the top classes and pictures of the inside of the model (explain.py); on the
page it follows each label, so the label never waits for it.
"""

import os
import sys

import gradio as gr
import numpy as np
import torch
from PIL import Image

import explain
import preprocess
from model import CLASS_NAMES, WeightsError, load_model

# Canvas pixels. The browser exports and uploads the canvas (three PNGs, several times) after
# each stroke: pen-up to label took 690 ms at 280, 787 ms at 420 and 1197 ms at 800 (headless
# Chromium, benchmarks/browser_latency.py), and 280 is ten MNIST pixels per model pixel.
CANVAS_SIDE = 280
BRUSH_RADIUS = 9  # canvas pixels: a digit drawn across most of the canvas gets MNIST-like strokes
# Predictions at once. benchmarks/load.py on 2 cores, 16 clients: 4 gave the best throughput
# and p99 (1, 2 and 8 were 5-10% slower). Gradio's own GRADIO_DEFAULT_CONCURRENCY_LIMIT
# variable sets another, for other hardware.
CONCURRENCY = int(os.environ.get("GRADIO_DEFAULT_CONCURRENCY_LIMIT", 4))
HINT = "Draw a digit from 0 to 9"
# Explanations at once. Each takes ~30 ms of one core (benchmarks/explain_speed.py): one at a
# time leaves the other core to the live labels, which must not wait for them.
EXPLAIN_CONCURRENCY = 1
TOP_CLASSES = 3
INSIDE_TEXT = """
**Saliency** (integrated gradients): the ink that made the answer. **Red**: ink that pushed
the model towards its answer; **blue**: ink that pushed it away; the stronger the colour,
the bigger the push. **Feature maps**: where each filter of the two convolution layers
responded to the drawing. **Bright**: the filter responded strongly; black: not at all
(each map on its own scale). The first layer finds edges and pieces of stroke, the second
combines them into larger parts.
"""

torch.set_num_threads(1)  # a 28x28 input is too small to share: cores serve requests instead
try:
    MODEL = load_model()
except WeightsError as e:
    sys.exit(f"MNIST Sketchpad cannot start: {e}")


def read_digit(
    image: np.ndarray | Image.Image | None,
) -> tuple[dict[str, float] | str, np.ndarray | None]:
    """The probability of each digit and what the model saw, or a hint when there is no digit."""
    x = None if image is None else preprocess.to_model_input(image)
    if x is None:
        return HINT, None
    with torch.inference_mode():
        probabilities = torch.softmax(MODEL(x), dim=1)[0].tolist()
    seen = (x[0, 0].numpy() * 255).round().astype(np.uint8)
    return dict(zip(CLASS_NAMES, probabilities, strict=True)), seen


def drawing(payload: dict | None) -> np.ndarray | None:
    """The sketchpad value's composite image (what the visitor sees), or ImageError.

    Its events run with preprocess=False and the Sketchpad's own decoding happens here, so
    that a corrupt file sent through the API gets a short message rather than a traceback.
    """
    if payload is None:
        return None
    try:
        return sketch.preprocess(sketch.data_model.model_validate(payload))["composite"]
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise preprocess.ImageError(preprocess.UNREADABLE) from None


def predict(payload: dict | None) -> tuple[dict[str, float] | str, np.ndarray | None]:
    """The sketchpad's endpoint."""
    try:
        image = drawing(payload)
    except preprocess.ImageError as e:
        gr.Warning(str(e))
        return str(e), None
    return read_digit(image)


def classify(payload: dict | None) -> tuple[dict[str, float] | str, np.ndarray | None]:
    """The upload endpoint: a photo, scan or drawing of one digit, in any common format.

    The event runs with preprocess=False: Gradio has checked the file into its cache, and
    preprocess.read_image decodes it once, within a size limit, with a clear message.
    """
    if payload is None:
        return read_digit(None)
    try:
        image = preprocess.read_image(payload["path"])
    except preprocess.ImageError as e:
        gr.Warning(str(e))
        return str(e), None
    return read_digit(image)


def glyph_inputs(image: np.ndarray | Image.Image) -> list[torch.Tensor]:
    """The model input of each digit in the drawing, in reading order: the one place the
    explanation gets its digits from. One digit for now (the whole drawing)."""
    x = preprocess.to_model_input(image)
    return [] if x is None else [x]


Explained = tuple[dict[str, float] | str, np.ndarray | None, np.ndarray | None, np.ndarray | None]


def explain_drawing(payload: dict | None, which: float | None = 1) -> Explained:
    """Inside the model, for digit number `which` (1: the first) of the sketchpad's drawing:
    the class probabilities, the saliency picture and the conv1 and conv2 feature-map grids.
    Without a digit to explain: a message for the label, and no pictures."""
    nothing = (None, None, None)
    try:
        image = drawing(payload)
    except preprocess.ImageError as e:
        return (str(e), *nothing)
    inputs = [] if image is None else glyph_inputs(image)
    if not inputs:
        return (HINT, *nothing)
    try:
        index = int(1 if which is None else which)
    except (TypeError, ValueError, OverflowError):
        return (f"Which digit to explain is a number (1: the first), not {which!r}.", *nothing)
    if not 1 <= index <= len(inputs):
        count = f"{len(inputs)} digit" + ("s" if len(inputs) > 1 else "")
        return (f"There is no digit {index}: the drawing has {count}.", *nothing)
    x = inputs[index - 1]
    seen = explain.explain(MODEL, x)
    return (
        dict(zip(CLASS_NAMES, seen.probabilities.tolist(), strict=True)),
        explain.saliency_image(x, seen.attributions),
        explain.feature_grid(seen.conv1),
        explain.feature_grid(seen.conv2),
    )


# Gradio's Sketchpad starts with no tool selected, and drops back to none after Clear
# (its ImageEditor sets the "image" tool), so a first stroke would draw nothing. That state
# shows a placeholder ("select the draw tool"); whenever it appears, press the Brush.
SELECT_BRUSH_JS = """
() => {
  const selectBrush = () => {
    const pad = document.getElementById("sketchpad");
    if (pad && pad.querySelector(".empty.wrap")) pad.querySelector(".toolbar-wrap button")?.click();
  };
  new MutationObserver(selectBrush).observe(document.body, {childList: true, subtree: true});
  selectBrush();
}
"""

# The 28x28 preview is enlarged by the browser: keep its pixels square and crisp.
CSS = """
#model-input img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }
#inside img { image-rendering: pixelated; }
"""

with gr.Blocks(title="MNIST Sketchpad", analytics_enabled=False) as demo:
    gr.Markdown(
        "# MNIST Sketchpad\n"
        "Draw a digit and watch a small ConvNet, trained on MNIST's handwritten digits, "
        "read it as you draw. Try to fool it."
    )
    with gr.Row(equal_height=False):
        with gr.Column():
            with gr.Tabs():
                with gr.Tab("Draw"):
                    sketch = gr.Sketchpad(
                        label="Draw a digit",
                        elem_id="sketchpad",
                        canvas_size=(CANVAS_SIDE, CANVAS_SIDE),
                        brush=gr.Brush(
                            default_size=BRUSH_RADIUS, colors=["#000000"], color_mode="fixed"
                        ),
                        layers=False,
                        transforms=(),
                        type="numpy",
                    )
                with gr.Tab("Upload"):
                    upload = gr.Image(
                        label="A photo or scan of one digit",
                        elem_id="upload",
                        sources=["upload", "clipboard"],
                    )
        with gr.Column():
            label = gr.Label(
                value=HINT,
                num_top_classes=len(CLASS_NAMES),
                label="The model reads",
                elem_id="prediction",
            )
            seen = gr.Image(
                label="What the model sees (28x28)",
                elem_id="model-input",
                interactive=False,
                format="png",
                height=224,
                buttons=[],
            )
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
    inside = dict(
        fn=explain_drawing,
        inputs=[sketch, which],
        outputs=[top, saliency, conv1, conv2],
        preprocess=False,
        show_progress="hidden",
        trigger_mode="always_last",
        concurrency_id="explain",  # its own slots: the live labels never queue behind it
        concurrency_limit=EXPLAIN_CONCURRENCY,
    )
    live = dict(
        outputs=[label, seen],
        show_progress="hidden",  # a spinner on every stroke would flicker
        trigger_mode="always_last",  # strokes faster than predictions: answer the latest
        concurrency_id="model",  # both endpoints share the model's CONCURRENCY slots
    )
    drawn = sketch.change(predict, inputs=sketch, api_name="predict", preprocess=False, **live)
    drawn.then(api_name="explain", **inside)  # after the label: it never waits for this
    which.change(api_visibility="private", **inside)
    upload.change(classify, inputs=upload, api_name="classify", preprocess=False, **live)
demo.queue(default_concurrency_limit=CONCURRENCY)


if __name__ == "__main__":
    # No run history: a run per stroke is noise, and each would store the canvas in the browser.
    demo.launch(css=CSS, js=SELECT_BRUSH_JS, run_history=False)
