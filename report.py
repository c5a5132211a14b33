"""The picture of how a training run went: curves, confusion matrix, misread digits.

train.py writes two files beside the weights X.safetensors: X.report.png (this module's
figure) and X.history.csv (one row per epoch, also stored in the weights' "history" key).
Drawn with matplotlib's object API on the Agg canvas: no pyplot, no global state.
"""

import csv
import io
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from model import CLASS_NAMES, IMAGE_SIZE

MISREAD_SHOWN = 40  # digits in the grid: 5 rows of 8 stay legible in a 1400 px wide picture
MISREAD_COLUMNS = 8
FIGURE_INCHES, DPI = (14, 10), 100  # 1400 x 1000 px
SIGNIFICANT_DIGITS = 6  # of each number in the history


def report_path(weights_path: Path) -> Path:
    """X.safetensors -> X.report.png, beside it."""
    return Path(weights_path).with_suffix(".report.png")


def history_path(weights_path: Path) -> Path:
    """X.safetensors -> X.history.csv, beside it."""
    return Path(weights_path).with_suffix(".history.csv")


def history_row(**values: float) -> dict[str, float]:
    """One epoch's record (epoch, loss, val_accuracy, lr, seconds, and any other numbers).

    Floats are rounded once, here, so the printed epoch line, the CSV and the weights'
    metadata all come from the same values.
    """
    return {
        name: float(f"{value:.{SIGNIFICANT_DIGITS}g}") if isinstance(value, float) else value
        for name, value in values.items()
    }


def history_csv(history: list[dict[str, float]]) -> str:
    """The history as CSV text: a header, then one row per epoch.

    The columns are every name that appears, in order of first appearance, so a column
    added in later epochs (or later versions of train.py) is kept; missing cells are empty.
    """
    columns = list(dict.fromkeys(name for row in history for name in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return text.getvalue()


def confusion_matrix(true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Counts, 10 x 10: row = the true digit, column = the digit predicted."""
    n = len(CLASS_NAMES)
    pairs = np.asarray(true, np.int64) * n + np.asarray(predicted, np.int64)
    return np.bincount(pairs, minlength=n * n).reshape(n, n)


def misread(true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Indices of the images read wrongly, in their original order."""
    return np.flatnonzero(np.asarray(true) != np.asarray(predicted))


def draw_report(
    history: list[dict[str, float]],
    images: np.ndarray,
    true: np.ndarray,
    predicted: np.ndarray,
    metadata: dict[str, str],
) -> Figure:
    """The whole report as one figure.

    images: the test images (uint8, N x 28 x 28), true and predicted: their labels,
    metadata: the weights' header (test accuracy, epochs, time, device...).
    """
    images, true, predicted = (np.asarray(a) for a in (images, true, predicted))
    fig = Figure(figsize=FIGURE_INCHES, dpi=DPI, layout="constrained")
    fig.suptitle(headline(metadata, len(true)), fontsize=14)
    loss_ax, acc_ax, lr_ax, confusion_ax, misread_ax = fig.subplot_mosaic(
        [["loss", "acc", "lr"], ["confusion", "misread", "misread"]],
        height_ratios=[1, 1.45],
    ).values()
    draw_curves(loss_ax, acc_ax, lr_ax, history)
    draw_confusion(confusion_ax, confusion_matrix(true, predicted))
    wrong = misread(true, predicted)
    draw_misread(misread_ax, images[wrong], true[wrong], predicted[wrong])
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as a PNG file's bytes, ready for model.write_atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def headline(metadata: dict[str, str], test_images: int) -> str:
    """The run in one line, from the weights' header."""
    accuracy, epochs = float(metadata["test_accuracy"]), int(metadata["epochs"])
    return (
        f"Test accuracy {accuracy:.2%} on {test_images:,} MNIST test images   ·   "
        f"{epochs} epoch{'s' * (epochs != 1)}, "
        f"{int(metadata['train_images']):,} training images   ·   "
        f"{metadata['train_seconds']} s on {metadata['device']}   ·   "
        f"seed {metadata['seed']}, {metadata['date']}"
    )


def draw_curves(loss_ax, acc_ax, lr_ax, history: list[dict[str, float]]) -> None:
    """Loss (every column whose name holds "loss"), validation accuracy, learning rate."""
    epochs = [row["epoch"] for row in history]
    columns = dict.fromkeys(name for row in history for name in row)
    for name in (name for name in columns if "loss" in name):
        loss_ax.plot(epochs, column(history, name), marker="o", markersize=3, label=name)
    loss_ax.set(title="Training loss (smoothed, end of epoch)", yscale="log")
    loss_ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    loss_ax.yaxis.set_minor_formatter(FuncFormatter(minor_log_label))
    if len(loss_ax.lines) > 1:
        loss_ax.legend()
    acc_ax.plot(epochs, 100 * column(history, "val_accuracy"), marker="o", markersize=3)
    acc_ax.set(title="Validation accuracy (%)")
    lr_ax.plot(epochs, column(history, "lr"), marker="o", markersize=3, color="tab:green")
    lr_ax.set(title="Learning rate (end of epoch)")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    for ax in (loss_ax, acc_ax, lr_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)  # whole epochs, even just one
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def minor_log_label(value: float, _position: int) -> str:
    """0.02, 0.03, 0.05 between the powers of ten, not 2 x 10^-2 at every minor tick."""
    leading = value / 10 ** np.floor(np.log10(value))
    return f"{value:g}" if round(leading) in (2, 3, 5) else ""


def column(history: list[dict[str, float]], name: str) -> np.ndarray:
    """One column as floats, NaN where an epoch lacks it (matplotlib leaves a gap)."""
    return np.array([row.get(name, np.nan) for row in history], dtype=float)


def draw_confusion(ax, confusion: np.ndarray) -> None:
    """Counts in every cell; a log colour scale so that single mistakes still show."""
    n = len(CLASS_NAMES)
    shown = np.ma.masked_equal(confusion, 0)
    ax.imshow(shown, cmap="Blues", norm=LogNorm(vmin=1, vmax=max(confusion.max(), 2)))
    dark = confusion.max() ** 0.5  # the log scale's middle: darker cells get white text
    for (row, col), count in np.ndenumerate(confusion):
        if count:
            colour = "white" if count > dark else "black"
            ax.text(col, row, str(count), ha="center", va="center", fontsize=8, color=colour)
    ax.set(
        title=f"Confusion matrix, {confusion.sum():,} test images (blank: 0)",
        xlabel="predicted digit",
        ylabel="true digit",
        xticks=range(n),
        yticks=range(n),
        xticklabels=CLASS_NAMES,
        yticklabels=CLASS_NAMES,
    )


def draw_misread(ax, images: np.ndarray, true: np.ndarray, predicted: np.ndarray) -> None:
    """The first MISREAD_SHOWN misread digits as one tiled image, each titled true→pred."""
    shown = min(len(images), MISREAD_SHOWN)
    rows = max(1, -(-shown // MISREAD_COLUMNS))
    gap, label = 4, 12  # pixels between tiles, and above each for its title
    cell_w, cell_h = IMAGE_SIZE + gap, IMAGE_SIZE + label
    sheet = np.zeros((rows * cell_h, MISREAD_COLUMNS * cell_w), np.uint8)
    for i in range(shown):
        top, left = (i // MISREAD_COLUMNS) * cell_h + label, (i % MISREAD_COLUMNS) * cell_w
        sheet[top : top + IMAGE_SIZE, left : left + IMAGE_SIZE] = images[i]
        ax.text(
            left + IMAGE_SIZE / 2,
            top - 2,
            f"{true[i]}→{predicted[i]}",
            ha="center",
            va="bottom",
            fontsize=10,
        )
    ax.imshow(255 - sheet, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_axis_off()
    if shown < len(images):
        which = f"the first {shown} shown"
    else:
        which = "all shown" if shown else "none"
    ax.set_title(f"Misread test digits, true→predicted: {len(images):,} ({which})")
