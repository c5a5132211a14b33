"""MNIST Sketchpad: draw a digit, see what the ConvNet reads, live.

    python app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / _PORT to change)

Endpoints, for the page and for programs (see README): `predict` takes the sketchpad's
value, `classify` a plain image file. Both answer with the probabilities of the ten digits
and the 28x28 picture the model was given. `explain` takes the sketchpad's value too and
answers with the top classes and pictures of the inside of the model (explain.py); on the
page it follows each label, so the label never waits for it.
"""

import operator
import os
import re
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import torch
import torch.fx
from PIL import Image
from torch.fx.passes.shape_prop import ShapeProp

import explain
import preprocess
from model import CLASS_NAMES, IMAGE_SIZE, WEIGHTS_PATH, WeightsError, load_model, read_metadata
from report import report_path

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


# "About the model": the weights' header keys shown first, with their names for people.
# Keys not listed here (a newer train.py's) follow under their own names.
TRAINING_FACTS = {
    "test_accuracy": "Test accuracy (10,000 MNIST test images)",
    "val_accuracy": "Validation accuracy (last 5,000 training images)",
    "epochs": "Epochs",
    "train_images": "Training images",
    "augment": "Augmented (pen redrawn, rotated, sheared, scaled, shifted)",
    "train_seconds": "Training time",
    "device": "Device",
    "date": "Date",
    "seed": "Seed",
    "batch_size": "Batch size",
    "lr": "Peak learning rate (one-cycle, AdamW)",
    "weight_decay": "Weight decay",
    "min_confidence": "Least confidence to call it a digit",
    "torch_version": "PyTorch",
}
# PyTorch's defaults, left out of the layer descriptions so that what is chosen stands out.
DEFAULT_SETTINGS = {
    "stride=(1, 1)",
    "padding=0",
    "dilation=1",
    "ceil_mode=False",
    "inplace=False",
    "bias=True",
}
OPERATORS = {operator.sub: "−", operator.truediv: "÷", operator.add: "+", operator.mul: "×"}


def layer_table(model: torch.nn.Module) -> str:
    """The forward pass as a Markdown table, traced from the model itself (torch.fx):
    each step in the order it runs, the shape of its output and its parameters."""
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        ShapeProp(traced).propagate(torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE))
    rows = ["| Step | Output | Parameters |", "| --- | --- | ---: |"]
    for node in traced.graph.nodes:
        params = 0
        if node.op == "placeholder":
            step = "input: a white digit on black, pixels in [0, 1]"
        elif node.op == "call_module":
            module = traced.get_submodule(node.target)
            settings = re.split(r", (?![^(]*\))", module.extra_repr())  # not inside (5, 5)
            settings = [s for s in settings if s not in DEFAULT_SETTINGS]
            step = f"`{node.target}`: `{type(module).__name__}({', '.join(settings)})`"
            params = sum(p.numel() for p in module.parameters())
        elif node.target in OPERATORS:  # the model's own normalisation
            step = f"x {OPERATORS[node.target]} {node.args[1]:g}"
        elif node.op in ("call_function", "call_method"):
            step = f"`{getattr(node.target, '__name__', node.target)}`"
        else:
            continue
        shape = " × ".join(str(n) for n in node.meta["tensor_meta"].shape[1:])
        rows.append(f"| {step} | {shape} | {params:,} |")
    return "\n".join(rows)


def fact_table(metadata: dict[str, str]) -> str:
    """The weights' training facts as a Markdown table (the history is in the report)."""
    facts = {key: value for key, value in metadata.items() if key != "history"}
    rows = ["| Fact | Value |", "| --- | --- |"]
    for key in [
        *(k for k in TRAINING_FACTS if k in facts),
        *sorted(facts.keys() - TRAINING_FACTS.keys()),
    ]:
        value = facts[key]
        if key.endswith("accuracy"):
            value = f"{float(value):.2%}"
        elif key.endswith("seconds"):
            value = f"{value} s"
        elif value.isdigit():
            value = f"{int(value):,}"
        rows.append(f"| {TRAINING_FACTS.get(key, f'`{key}`')} | {value} |")
    return "\n".join(rows)


def about_model(model: torch.nn.Module, weights_path: Path) -> tuple[str, str, Path | None]:
    """The "About the model" view: the architecture and its parameter count (Markdown),
    the training facts from the weights' header (Markdown), and the training report
    image beside the weights, or None when there is none."""
    params = sum(p.numel() for p in model.parameters())
    architecture = f"### {type(model).__name__}: {params:,} parameters\n\n{layer_table(model)}"
    report, metadata = report_path(weights_path), read_metadata(weights_path)
    training = f"### How `{Path(weights_path).name}` was trained\n\n{fact_table(metadata)}\n\n"
    if "history" in metadata:
        epochs = len(metadata["history"].splitlines()) - 1
        training += (
            f"The per-epoch history ({epochs} rows of CSV) is in the header's `history` key. "
        )
    if not report.exists():
        training += (
            f"No training report beside the weights (`{report.name}`): `python train.py` draws one."
        )
        return architecture, training, None
    return architecture, training, report


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
    with gr.Accordion("About the model", open=False, elem_id="about"):
        architecture, training, training_report = about_model(MODEL, WEIGHTS_PATH)
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
demo.queue(default_concurrency_limit=CONCURRENCY)


if __name__ == "__main__":
    # No run history: a run per stroke is noise, and each would store the canvas in the browser.
    demo.launch(css=CSS, js=SELECT_BRUSH_JS, run_history=False)
