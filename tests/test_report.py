"""The training report: train.py's history, confusion matrix and picture, from one real run."""

import csv
import io
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import about
import report
from model import WEIGHTS_PATH, load_model, read_metadata
from train import predict, to_inputs

ROOT = WEIGHTS_PATH.parent.parent
EPOCHS = 2
EPOCH_LINE = re.compile(
    r"epoch +(\d+)/\d+  loss ([\d.]+)  val ([\d.]+)%  lr (\S+)  ([\d.]+)s"
)  # train.py's printed line


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One small real training run through the command line: its weights and its output."""
    out = tmp_path_factory.mktemp("run") / "w.safetensors"
    done = subprocess.run(
        [sys.executable, "train.py", "--epochs", str(EPOCHS), "--limit", "2000"]
        + ["--seed", "5", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return out, done.stdout


@pytest.fixture(scope="module")
def test_reading(run, mnist_test):
    """The saved model's reading of the 10,000 test images: (images, true, predicted)."""
    images, labels = mnist_test
    predicted = predict(load_model(run[0]), to_inputs(images, torch.device("cpu")))
    return images.numpy(), labels.numpy(), predicted.numpy()


def test_files_beside_the_weights_and_nothing_else(run):
    out, _ = run
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "w.history.csv",
        "w.report.png",
        "w.safetensors",
    ]
    assert report.report_path(out) == out.parent / "w.report.png"


def test_history_has_one_row_per_epoch_matching_the_printed_lines(run):
    out, stdout = run
    printed = EPOCH_LINE.findall(stdout)
    rows = list(csv.DictReader(io.StringIO(report.history_path(out).read_text())))
    assert len(printed) == len(rows) == EPOCHS
    for (epoch, loss, val, lr, seconds), row in zip(printed, rows, strict=True):
        assert row["epoch"] == epoch
        assert f"{float(row['loss']):.4f}" == loss
        assert f"{float(row['val_accuracy']):.2%}" == f"{val}%"
        assert f"{float(row['lr']):.2e}" == lr
        assert f"{float(row['seconds']):.1f}" == seconds
    # The one-cycle schedule ends far below its peak; the loss falls on a learnable task.
    assert float(rows[-1]["lr"]) < float(read_metadata(out)["lr"]) / 10
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])


def test_weights_carry_the_same_history_as_the_csv(run):
    out, _ = run
    meta = read_metadata(out)
    assert meta["history"] == report.history_path(out).read_text()
    last_epoch = list(csv.DictReader(io.StringIO(meta["history"])))[-1]
    assert meta["val_accuracy"] == f"{float(last_epoch['val_accuracy']):.4f}"


def test_confusion_matrix_agrees_with_the_printed_accuracy(run, test_reading):
    out, stdout = run
    _, true, predicted = test_reading
    confusion = report.confusion_matrix(true, predicted)
    assert confusion.shape == (10, 10) and confusion.sum() == 10_000
    assert (confusion.sum(axis=1) == np.bincount(true, minlength=10)).all()  # rows: true digit
    accuracy = np.trace(confusion) / 10_000
    printed = re.search(r"test accuracy ([\d.]+)% \(10,000 images, ([\d,]+) misread\)", stdout)
    assert f"{printed[1]}%" == f"{accuracy:.2%}"
    assert int(printed[2].replace(",", "")) == confusion.sum() - np.trace(confusion)
    assert read_metadata(out)["test_accuracy"] == f"{accuracy:.4f}"


def test_report_png_is_wide_enough(run):
    out, _ = run
    with Image.open(report.report_path(out)) as picture:
        assert picture.format == "PNG" and picture.width >= 800


def test_report_figure_shows_the_matrix_and_the_misread_digits(run, test_reading):
    """What the picture says, read from the figure's own texts rather than its pixels."""
    out, _ = run
    images, true, predicted = test_reading
    meta = read_metadata(out)
    history = list(csv.DictReader(io.StringIO(meta["history"])))
    history = [{k: float(v) for k, v in row.items()} for row in history]
    fig = report.draw_report(history, images, true, predicted, meta)
    axes = {ax.get_title().split(",")[0].split(":")[0]: ax for ax in fig.axes}

    confusion = report.confusion_matrix(true, predicted)
    shown = np.zeros((10, 10), int)
    for text in axes["Confusion matrix"].texts:
        col, row = (round(v) for v in text.get_position())
        shown[row, col] = int(text.get_text())
    assert (shown == confusion).all()

    wrong = report.misread(true, predicted)
    assert len(wrong) == confusion.sum() - np.trace(confusion) > report.MISREAD_SHOWN
    grid = axes["Misread test digits"]
    assert f": {len(wrong):,} (the first {report.MISREAD_SHOWN} shown)" in grid.get_title()
    labels = [text.get_text() for text in grid.texts]
    assert labels == [f"{true[i]}→{predicted[i]}" for i in wrong[: report.MISREAD_SHOWN]]

    assert f"Test accuracy {np.trace(confusion) / 10_000:.2%}" in fig.get_suptitle()
    assert f"{EPOCHS} epochs" in fig.get_suptitle()
    assert len(axes["Training loss (smoothed"].lines[0].get_xdata()) == EPOCHS


def test_history_keeps_columns_that_appear_later():
    history = [
        report.history_row(epoch=1, loss=0.5, val_accuracy=0.9, lr=1e-3, seconds=2.0),
        report.history_row(
            epoch=2, loss=0.25, val_accuracy=0.95, lr=1e-4, seconds=2.0, oe_loss=0.125
        ),
    ]
    rows = list(csv.DictReader(io.StringIO(report.history_csv(history))))
    assert list(rows[0]) == ["epoch", "loss", "val_accuracy", "lr", "seconds", "oe_loss"]
    assert rows[0]["oe_loss"] == "" and float(rows[1]["oe_loss"]) == 0.125
    images = np.zeros((3, 28, 28), np.uint8)
    fig = report.draw_report(
        history, images, np.array([1, 2, 3]), np.array([1, 2, 4]), read_metadata()
    )
    loss_ax = next(ax for ax in fig.axes if ax.get_title().startswith("Training loss"))
    assert [line.get_label() for line in loss_ax.lines] == ["loss", "oe_loss"]
    assert report.history_row(loss=1 / 3)["loss"] == 0.333333  # rounded once, for all copies


def test_about_view_describes_the_weights_it_is_given(run, tmp_path):
    out, _ = run
    meta = read_metadata(out)
    model = load_model(out)
    architecture, training, picture = about.about_model(model, out)
    assert f"{sum(p.numel() for p in model.parameters()):,} parameters" in architecture
    assert "| 64 × 4 × 4 |" in architecture  # traced output shape after the second pooling
    assert f"| {float(meta['test_accuracy']):.2%} |" in training
    assert f"| Epochs | {EPOCHS} |" in training and f"({EPOCHS} rows of CSV)" in training
    assert picture == report.report_path(out)

    alone = tmp_path / "alone.safetensors"  # the same weights, without their report
    alone.write_bytes(out.read_bytes())
    _, training, picture = about.about_model(model, alone)
    assert picture is None and "No training report" in training
