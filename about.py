"""What the page tells about the model: its layers, traced from the model itself, and how
its weights were trained (their header's facts and the training report beside them).
"""

import operator
import re
from pathlib import Path

import torch
import torch.fx
from torch.fx.passes.shape_prop import ShapeProp

from model import IMAGE_SIZE, Ensemble, read_metadata
from report import report_path

# "About the model": the weights' header keys shown first, with their names for people.
# Keys not listed here (a newer train.py's) follow under their own names.
TRAINING_FACTS = {
    "test_accuracy": "Test accuracy (10,000 MNIST test images)",
    "val_accuracy": "Validation accuracy (last 5,000 training images)",
    "members": "ConvNets in the ensemble (their probabilities averaged)",
    "epochs": "Epochs",
    "train_images": "Training images",
    "augment": "Augmented (pen redrawn, rotated, sheared, scaled, shifted, blurred)",
    "train_seconds": "Training time",
    "device": "Device",
    "precision": "Arithmetic of the training steps",
    "date": "Date",
    "seed": "Seed",
    "batch_size": "Batch size",
    "lr": "Peak learning rate (one-cycle, AdamW)",
    "weight_decay": "Weight decay",
    "min_confidence": "Least confidence to call it a digit",
    "nondigits": "Non-digits trained on (outlier exposure)",
    "val_nondigits_declined": "Validation non-digits declined at that confidence",
    "junk": "Wrong cuts through numbers trained on as non-digits (segmentation junk)",
    "val_junk_declined": "Validation segmentation junk declined at that confidence",
    "marks": "Taps, dabs, ticks and small scribbles trained on as non-digits",
    "val_marks_declined": "Validation marks declined at that confidence",
    # A fine-tune on visitors' corrections (finetune.py): its epochs and rate are those above.
    "corrections": "Visitors' corrections fine-tuned on",
    "corrections_held_out": "Corrections held out to judge the fine-tune",
    "corrections_accuracy": "Held-out corrections read right",
    "from_corrections_accuracy": "Held-out corrections read right before the fine-tune",
    "drawn_val_accuracy": "Drawn validation digits read right",
    "from_drawn_val_accuracy": "Drawn validation digits read right before the fine-tune",
    "from_val_accuracy": "Validation accuracy before the fine-tune",
    "from_val_nondigits_declined": "Validation non-digits declined before the fine-tune",
    "from_test_accuracy": "Test accuracy before the fine-tune",
    "corrections_from": "Fine-tuned from the weights with sha256",
    "corrections_rows": 'sha256 of the ids of the accepted corrections read (sorted, "1,2,3")',
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
ENSEMBLE_TEXT = (
    "The same ConvNet, trained several times side by side from different random starts, on "
    "the same batches (a deep ensemble, Lakshminarayanan et al., 2017). Each member reads "
    "the drawing; the probabilities shown are the mean of the members' probabilities, so a "
    "drawing the members disagree on gets a spread belief and reads as not a digit. Inside "
    "the model shows the first member's feature maps, and the saliency of the ensemble's "
    "answer."
)
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
        if key.endswith(("accuracy", "declined")):
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
    if isinstance(model, Ensemble):
        architecture = (
            f"### Ensemble of {len(model.members)} ConvNets: {params:,} parameters\n\n"
            f"{ENSEMBLE_TEXT}\n\n#### Each member\n\n{layer_table(model.members[0])}"
        )
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
