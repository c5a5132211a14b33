"""Train the ConvNet on MNIST and save the weights that the app loads.

    python train.py                 # the shipped weights (4 to 7 minutes on a 2-core CPU)
    python train.py --epochs 1      # 99% of MNIST test, in 15 to 20 seconds
    python train.py --corrections data/corrections.sqlite3   # fine-tune: finetune.py

    MNIST -> the synthesised pictures and their pen paths (cached in data/pictures/) -> fit
    -> the "not a digit" threshold -> test once -> report, history, weights

The whole dataset lives on the device as one tensor and batches are drawn by index,
augmented there in one batched step: no DataLoader or per-image PIL work in the loop.
Where the time goes, measured: docs/DESIGN.md, Training speed.
"""

import argparse
import contextlib
import ctypes
import hashlib
import importlib.metadata
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save
from torch import nn
from tqdm import tqdm

import report
from augment import augment, pen_paths
from mnist import DATA_DIR, load_mnist
from model import (
    MAX_MEMBERS,
    WEIGHTS_PATH,
    ConvNet,
    Ensemble,
    build_model,
    save_weights,
    write_atomically,
)
from synth import NONDIGIT_PEN_STEPS, digit_styles, marks, nondigits, segmentation_junk

VAL_SIZE = 5_000  # the last training images; they report progress and set the threshold below
# Images a forward pass when evaluating: a batch of 256's activations (19 MB) reuse memory, where
# 2,000's (150 MB) take fresh pages each batch: 1.7x as fast on a 2-core CPU (train_profile).
EVAL_BATCH = 256
# Outlier exposure (Hendrycks et al., 2019): each batch of digits comes with pictures of other
# things, for which the loss asks for an even belief over the ten digits; a low top
# probability then means "not a digit".
NONDIGITS = 12_000  # synthesised once (synth.nondigits); 3,000 more for the threshold
NONDIGITS_PER_BATCH = 40
# Segmentation junk (wrong cuts through numbers, synth.segmentation_junk) and marks (taps,
# dabs, ticks: synth.marks), for the segmentation search's candidates that are no digit.
JUNK = 6_000
JUNK_PER_BATCH = 12
MARKS = 1_000
MARKS_PER_BATCH = 8
OUTLIER_WEIGHT = 0.5  # Hendrycks et al.'s weight for the even-belief loss
STYLED_DIGITS_PER_BATCH = 8  # digits in other styles (synth.digit_styles) in each batch
CORRECTIONS_PER_BATCH = 16  # a fine-tune's glyphs from visitors' corrections (finetune.py)
MEMBERS = 1  # ConvNets in the shipped reader (docs/DESIGN.md, Ensembles: why K = 1)
MEMBER_EPOCHS = 30  # epochs times members: the default run's training time, whatever the members
#                    (22 would fit 5 minutes on a 2-core CPU without AMX but decline fewer of
#                    the held-out non-digits than the 90% floor: docs/DESIGN.md measures them)
DECLINE_RATE = 0.01  # of the drawn validation digits that the threshold may decline
PEAK_LR = 3e-3  # of the one-cycle schedule, for 30 epochs of batches of 128
# glibc gives a freed block of over 128 KB back to the OS, and the next step page-faults it
# in again: a step's activations are 1 to 15 MB each. Kept instead (as jemalloc and tcmalloc
# keep them: PyTorch's CPU performance guide), an epoch takes 0.75x as long (float32: 0.8x;
# docs/DESIGN.md, Training speed).
MMAP_THRESHOLD = 32 * 2**20  # blocks up to glibc's largest threshold come from the heap...
TRIM_THRESHOLD = 2**30  # ...which keeps up to this much freed memory for the next step
ROOT = Path(__file__).resolve().parent
# The synthesised pictures are cached (data/pictures/): what makes them, and what they are
# drawn with, names the cache file.
PICTURE_CODE = ("synth.py", "preprocess.py", "photo.py", "model.py")
PICTURE_LIBRARIES = ("numpy", "pillow", "scipy", "scikit-image", "matplotlib", "torch")


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device, else the available accelerator (CUDA, MPS, XPU...), else CPU."""
    if requested:
        try:
            device = torch.device(requested)
            torch.empty(1, device=device)
        except (RuntimeError, AssertionError) as e:
            sys.exit(f"Device '{requested}' is not usable here ({e}). Try --device cpu.")
        return device
    # A CUDA build on a machine without a GPU still names cuda as its accelerator:
    # check_available asks whether one is actually there.
    accelerator = torch.accelerator.current_accelerator(check_available=True)
    return accelerator if accelerator is not None else torch.device("cpu")


def keep_freed_memory() -> None:
    """Have glibc's malloc keep the blocks that a training step frees for the next step
    (mallopt's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD), rather than return them to the OS.
    Linux only: elsewhere, and on a C library without mallopt, nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    mallopt(m_mmap_threshold, MMAP_THRESHOLD)
    mallopt(m_trim_threshold, TRIM_THRESHOLD)


def uses_bfloat16(device: torch.device, float32: bool = False) -> bool:
    """Whether training computes in bfloat16: on CPUs with AMX tiles, whose matrix units
    make it 1.7x as fast as float32 (measured: benchmarks/train_speed.py), unless `float32`
    (--float32: as a CPU without AMX trains). Elsewhere float32. The weights stay float32
    either way, and so does every evaluation."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    return device.type == "cpu" and not float32 and amx()


def train_step(
    model: ConvNet,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    others: torch.Tensor | None = None,
    bfloat16: bool = False,
) -> float:
    """One gradient step on a batch of digits `x` labelled `y`, and of non-digits `others`
    (whose loss is the cross-entropy to the even distribution), computed in bfloat16
    autocast if asked (see uses_bfloat16); returns the loss."""
    batch = x if others is None else torch.cat([x, others])
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bfloat16):
        logits = model(batch.contiguous(memory_format=torch.channels_last)).float()
    loss = F.cross_entropy(logits[: len(x)], y)
    if others is not None:
        loss = loss - OUTLIER_WEIGHT * F.log_softmax(logits[len(x) :], dim=1).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


@torch.no_grad()
def eval_logits(
    model: nn.Module, images: torch.Tensor, batch_size: int = EVAL_BATCH
) -> torch.Tensor:
    """The model's logits for images (float in [0, 1], N x 1 x 28 x 28), in eval mode, in
    batches of `batch_size`."""
    model.eval()
    batches = images.split(batch_size)
    return torch.cat([model(b.contiguous(memory_format=torch.channels_last)) for b in batches])


def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The digit read in each image."""
    return eval_logits(model, images).argmax(1)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images classified correctly."""
    return (predict(model, images) == labels).float().mean().item()


def top_probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Each image's highest softmax probability: the app's confidence that it is a digit."""
    return eval_logits(model, images).softmax(1).amax(1)


def choose_min_confidence(model: nn.Module, digits: torch.Tensor) -> float:
    """The top-probability threshold that declines DECLINE_RATE of the (drawn) validation
    digits."""
    return torch.quantile(top_probabilities(model, digits), DECLINE_RATE).item()


def to_inputs(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N, 28, 28) -> the model's float input (N, 1, 28, 28) in [0, 1], on the device."""
    return images.to(device).unsqueeze(1).float().div_(255)


class Pictures(NamedTuple):
    """Everything a training run draws its batches from, on the device, with the pen paths
    that `augment` redraws along (None without augmentation)."""

    digits: torch.Tensor
    labels: torch.Tensor
    styles: torch.Tensor  # synth.digit_styles
    style_labels: torch.Tensor
    others: torch.Tensor  # synth.nondigits
    junk: torch.Tensor  # synth.segmentation_junk
    marks: torch.Tensor  # synth.marks: never redrawn
    paths: tuple[torch.Tensor, ...] | None  # of digits, styles, others and junk
    # A fine-tune's glyphs from visitors' corrections (finetune.py), label -1 for "not a digit".
    corrections: torch.Tensor | None = None
    correction_labels: torch.Tensor | None = None
    correction_paths: torch.Tensor | None = None


class Splits(NamedTuple):
    """MNIST as a run uses it: uint8 images (N, 28, 28) and their labels."""

    train_images: torch.Tensor  # the training images less the validation ones
    train_labels: torch.Tensor
    val_images: torch.Tensor  # they report progress and set the threshold
    val_labels: torch.Tensor
    test_images: torch.Tensor  # reported only: they choose nothing
    test_labels: torch.Tensor


@contextlib.contextmanager
def stage(what: str) -> Iterator[None]:
    """One line for a stage of the run: what it does, shown at once, then its seconds."""
    print(f"{what}...", end="", flush=True)
    started = time.perf_counter()
    yield
    print(f" {time.perf_counter() - started:.1f}s", flush=True)


def load_splits(args: argparse.Namespace) -> Splits:
    """MNIST's training images (the last VAL_SIZE for validation; the first args.limit of
    the others when set) and its test images."""
    train_images, train_labels = load_mnist(args.data_dir, train=True)
    test_images, test_labels = load_mnist(args.data_dir, train=False)
    val_images, val_labels = train_images[-VAL_SIZE:], train_labels[-VAL_SIZE:]
    train_images, train_labels = train_images[:-VAL_SIZE], train_labels[:-VAL_SIZE]
    if args.limit:
        train_images, train_labels = train_images[: args.limit], train_labels[: args.limit]
    return Splits(train_images, train_labels, val_images, val_labels, test_images, test_labels)


def synthesized(args: argparse.Namespace, mnist: Splits) -> dict[str, torch.Tensor]:
    """The run's synthesised pictures (synth.py), for training and for validation, and the
    pen paths (`redrawn_pen_paths`) of all that augmentation redraws, on the CPU: read from
    the cache (data/pictures/) when an earlier run with the same seed, sizes and code made
    them, else made (about 40 s on a 2-core CPU) and cached."""
    n = len(mnist.train_images)
    counts = {"digits": n, "others": min(NONDIGITS, n // 4), "junk": min(JUNK, n // 8)}
    counts |= {"marks": min(MARKS, n // 40), "val": len(mnist.val_images)}
    sizes = hashlib.sha256(repr(sorted(counts.items())).encode()).hexdigest()[:8]
    code = code_hash(PICTURE_CODE, PICTURE_LIBRARIES)
    path = Path(args.data_dir) / "pictures" / f"seed{args.seed}-{sizes}-{code}.safetensors"
    if path.exists():
        with stage(f"synthesised pictures from the cache {path.name}"):
            pictures = load_file(path)
    else:
        with stage(
            f"making {counts['others']:,} non-digits, {counts['junk']:,} pieces of segmentation "
            f"junk, {counts['marks']:,} marks and digits in other styles, and their validation "
            "twins (cached for the next run)"
        ):
            pictures = make_synthesized(mnist, counts, args.seed)
        write_cache(path, pictures, replaces=("seed*.safetensors", f"-{code}"))
    return pictures | redrawn_pen_paths(mnist, pictures, path)


def code_hash(files: tuple[str, ...], libraries: tuple[str, ...]) -> str:
    """A hash of the files' code and the libraries' versions: what a cache was made with."""
    digest = hashlib.sha256()
    for name in files:
        digest.update((ROOT / name).read_bytes())
    for library in libraries:
        digest.update(importlib.metadata.version(library).encode())
    return digest.hexdigest()[:16]


def make_synthesized(mnist: Splits, counts: dict[str, int], seed: int) -> dict[str, torch.Tensor]:
    """The pictures that synth.py makes for a run (N, 1, 28, 28), with labels for the digits
    in other styles; the validation ones from other seeds than training's."""
    val_seed = seed + 1
    images, labels = mnist.val_images, mnist.val_labels
    makers = {
        "others": lambda: nondigits(counts["others"], seed),
        "junk": lambda: segmentation_junk(
            mnist.train_images, mnist.train_labels, counts["junk"], seed
        ),
        "marks": lambda: marks(counts["marks"], seed),
        "val_others": lambda: nondigits(len(images) * 3 // 5, val_seed),
        "val_junk": lambda: segmentation_junk(images, labels, len(images) // 5, val_seed),
        "val_marks": lambda: marks(len(images) // 10, val_seed),
    }
    pictures = dict(zip(("styles", "style_labels"), digit_styles(seed), strict=True))
    # A bar on a terminal only (disable=None), as the epochs' bars: a log gets the stage line.
    for kind in tqdm(makers, desc="pictures", leave=False, disable=None):
        pictures[kind] = makers[kind]()
    return pictures


def redrawn_pen_paths(
    mnist: Splits, pictures: dict[str, torch.Tensor], picture_path: Path
) -> dict[str, torch.Tensor]:
    """The pen paths (augment.pen_paths) of the MNIST digits and synthesised pictures that
    augmentation redraws, for training and validation ("digits_paths", "val_junk_paths"...):
    cached beside the pictures, under a hash of augment.py too, so that a change to the
    augmentation makes these again (4 s), not the pictures (about 35 s)."""
    code = code_hash(("augment.py",), ("scikit-image", "torch"))
    path = picture_path.with_name(f"{picture_path.stem}-paths-{code}.safetensors")
    if path.exists():
        with stage("pen paths from the cache"):
            return load_file(path)
    cpu = torch.device("cpu")
    redrawn = {
        "digits": to_inputs(mnist.train_images, cpu),
        "val_digits": to_inputs(mnist.val_images, cpu),
    }
    redrawn |= {k: pictures[k] for k in ("styles", "others", "junk", "val_others", "val_junk")}
    with stage(f"pen paths of the {sum(len(x) for x in redrawn.values()):,} pictures"):
        paths = {f"{kind}_paths": pen_paths(x) for kind, x in redrawn.items()}
    write_cache(path, paths, replaces=("seed*-paths-*.safetensors", f"-paths-{code}"))
    return paths


def write_cache(path: Path, tensors: dict[str, torch.Tensor], replaces: tuple[str, str]) -> None:
    """Write a cache file atomically, then remove the files it replaces: those matching the
    glob replaces[0] whose names lack replaces[1] (made by other code: up to 260 MB each)."""
    write_atomically(path, save({k: t.contiguous() for k, t in tensors.items()}))
    pattern, current = replaces
    for old in path.parent.glob(pattern):
        if current not in old.name:
            old.unlink(missing_ok=True)


def make_pictures(
    args: argparse.Namespace, mnist: Splits, made: dict[str, torch.Tensor], device: torch.device
) -> Pictures:
    """The training digits and what this run draws besides them, on the device, with the
    pen paths of all that augmentation redraws."""
    kinds = ("styles", "style_labels", "others", "junk", "marks")
    paths = None
    if args.augment:
        paths = tuple(made[f"{k}_paths"].to(device) for k in ("digits", "styles", "others", "junk"))
    return Pictures(
        to_inputs(mnist.train_images, device),
        mnist.train_labels.to(device),
        *(made[kind].to(device) for kind in kinds),
        paths,
    )


def validation_pictures(
    mnist: Splits, made: dict[str, torch.Tensor], seed: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """The validation digits and non-digits, drawn as the app meets them (redrawn, moved),
    from the validation images and with other seeds than training's."""
    generator = torch.Generator(device=device).manual_seed(seed + 1)
    val = {k: t.to(device) for k, t in made.items() if k.startswith("val_")}
    digits = to_inputs(mnist.val_images, device)
    others, junk = val["val_others"], val["val_junk"]
    return {
        "digits": augment(digits, val["val_digits_paths"], generator),
        "nondigits": augment(others, val["val_others_paths"], generator, NONDIGIT_PEN_STEPS),
        "junk": augment(junk, val["val_junk_paths"], generator, NONDIGIT_PEN_STEPS),
        "marks": augment(val["val_marks"], None, generator, redraw_fraction=0),
    }


def batch(
    data: Pictures, index: torch.Tensor, generator: torch.Generator, augmented: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The digits at `index`, STYLED_DIGITS_PER_BATCH digits in other styles, their labels,
    and the batch's non-digits: letters and shapes, segmentation junk and marks."""
    device = data.digits.device

    def draw(pool: torch.Tensor, count: int) -> torch.Tensor:
        return torch.randint(len(pool), (count,), generator=generator, device=device)

    styled, other = (
        draw(data.styles, STYLED_DIGITS_PER_BATCH),
        draw(data.others, NONDIGITS_PER_BATCH),
    )
    junk, mark = draw(data.junk, JUNK_PER_BATCH), draw(data.marks, MARKS_PER_BATCH)
    x = torch.cat([data.digits[index], data.styles[styled]])
    y = torch.cat([data.labels[index], data.style_labels[styled]])
    others, junks, marks_ = data.others[other], data.junk[junk], data.marks[mark]
    if augmented:
        digit_paths, style_paths, other_paths, junk_paths = data.paths
        x = augment(x, torch.cat([digit_paths[index], style_paths[styled]]), generator)
        others = augment(
            torch.cat([others, junks]),
            torch.cat([other_paths[other], junk_paths[junk]]),
            generator,
            NONDIGIT_PEN_STEPS,
        )
        marks_ = augment(marks_, None, generator, redraw_fraction=0)
    others = torch.cat([others, marks_] if augmented else [others, junks, marks_])
    if data.corrections is not None:
        x, y, others = with_corrections(data, x, y, others, generator, augmented)
    return x, y, others


def with_corrections(
    data: Pictures,
    x: torch.Tensor,
    y: torch.Tensor,
    others: torch.Tensor,
    generator: torch.Generator,
    augmented: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch's digits, labels and non-digits with CORRECTIONS_PER_BATCH of the
    corrections' glyphs added: digits to the digits, "not a digit" to the non-digits."""
    device = data.digits.device
    pick = torch.randint(
        len(data.corrections), (CORRECTIONS_PER_BATCH,), generator=generator, device=device
    )
    glyphs, labels = data.corrections[pick], data.correction_labels[pick]
    if augmented:
        glyphs = augment(glyphs, data.correction_paths[pick], generator)
    digit = labels >= 0
    return (
        torch.cat([x, glyphs[digit]]),
        torch.cat([y, labels[digit]]),
        torch.cat([others, glyphs[~digit]]),
    )


def optimizers_and_schedules(
    members: list[nn.Module], args: argparse.Namespace, steps_per_epoch: int
) -> tuple[list[torch.optim.Optimizer], list[torch.optim.lr_scheduler.LRScheduler]]:
    """AdamW for each member, with a one-cycle learning rate (Smith and Topin, 2019) over
    the whole run."""
    # Fused: one kernel updates every parameter, torch's fastest AdamW on each device it
    # trains on (CPU, CUDA, MPS, XPU); on a 2-core CPU, as fast as the for-loop or a little
    # faster (docs/DESIGN.md, Training speed).
    optimizers = [
        torch.optim.AdamW(m.parameters(), lr=args.lr, weight_decay=args.weight_decay, fused=True)
        for m in members
    ]
    schedules = [
        torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=args.lr,
            epochs=args.epochs,
            steps_per_epoch=steps_per_epoch,
            pct_start=0.2,
        )
        for optimizer in optimizers
    ]
    return optimizers, schedules


def fit(
    model: nn.Module,
    data: Pictures,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    args: argparse.Namespace,
) -> list[dict]:
    """Train every member of `model` (a ConvNet, or an Ensemble's members side by side, each
    step on the same batch) for args.epochs; one report.history_row per epoch."""
    device = data.digits.device
    generator = torch.Generator(device=device).manual_seed(args.seed)
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    steps_per_epoch = -(-len(data.digits) // args.batch_size)
    optimizers, schedules = optimizers_and_schedules(members, args, steps_per_epoch)
    bfloat16 = uses_bfloat16(device, args.float32)
    history = []
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(data.digits), generator=generator, device=device)
        # A bar on a terminal only (disable=None): a log gets the epoch's line below.
        bar = tqdm(
            range(steps_per_epoch), desc=f"epoch {epoch}/{args.epochs}", leave=False, disable=None
        )
        running_loss = 0.0
        for step in bar:
            index = order[step * args.batch_size : (step + 1) * args.batch_size]
            x, y, others = batch(data, index, generator, args.augment)
            losses = [
                train_step(member, optimizer, x, y, others, bfloat16)
                for member, optimizer in zip(members, optimizers, strict=True)
            ]
            for schedule in schedules:
                schedule.step()
            loss = sum(losses) / len(losses)
            running_loss = loss if step == 0 else 0.98 * running_loss + 0.02 * loss
            if step % 20 == 0:
                bar.set_postfix(loss=f"{running_loss:.4f}")
        row = report.history_row(
            epoch=epoch,
            loss=running_loss,
            val_accuracy=accuracy(model, x_val, y_val),
            lr=schedules[0].get_last_lr()[0],
            seconds=time.perf_counter() - started,
        )
        history.append(row)
        print(
            f"epoch {epoch:2d}/{args.epochs}  loss {row['loss']:.4f}  "
            f"val {row['val_accuracy']:.2%}  lr {row['lr']:.2e}  {row['seconds']:.1f}s",
            flush=True,
        )
    return history


def set_threshold(model: nn.Module, val: dict[str, torch.Tensor]) -> tuple[float, dict]:
    """The "not a digit" threshold, set on validation pictures drawn as the app meets them
    (neither the test set nor the evaluation sets choose anything), and the share of each
    kind of validation non-digit that it declines."""
    min_confidence = choose_min_confidence(model, val["digits"])
    declined = {
        kind: (top_probabilities(model, val[kind]) < min_confidence).float().mean().item()
        for kind in ("nondigits", "junk", "marks")
    }
    print(
        f"not a digit below a top probability of {min_confidence:.3f}: declines "
        f"{DECLINE_RATE:.1%} of drawn validation digits, {declined['nondigits']:.1%} of "
        f"non-digits, {declined['junk']:.1%} of segmentation junk, {declined['marks']:.1%} "
        "of marks"
    )
    return min_confidence, declined


def run_facts(
    test_accuracy: float,
    min_confidence: float,
    declined: dict[str, float],
    data: Pictures,
    seconds: float,
    history: list[dict],
) -> dict[str, str]:
    """The weights header's figures of a run, a full one or a fine-tune: its MNIST test and
    last validation accuracy, the "not a digit" threshold and the shares of validation
    non-digits it declines (set_threshold), what it trained on, its seconds and history."""
    return {
        "test_accuracy": f"{test_accuracy:.4f}",
        "val_accuracy": f"{history[-1]['val_accuracy']:.4f}",
        "min_confidence": f"{min_confidence:.4f}",
        "val_nondigits_declined": f"{declined['nondigits']:.4f}",
        "val_junk_declined": f"{declined['junk']:.4f}",
        "val_marks_declined": f"{declined['marks']:.4f}",
        "nondigits": str(len(data.others)),
        "junk": str(len(data.junk)),
        "marks": str(len(data.marks)),
        "train_images": str(len(data.digits)),
        "train_seconds": f"{seconds:.0f}",
        "history": report.history_csv(history),
    }


def run_metadata(args: argparse.Namespace, device: torch.device, **facts: str) -> dict[str, str]:
    """The weights header's facts about the run: its settings and where it ran, with `facts`
    (the figures it measured)."""
    return facts | {
        "members": str(args.members),
        "epochs": str(args.epochs),
        "batch_size": str(args.batch_size),
        "lr": str(args.lr),
        "weight_decay": str(args.weight_decay),
        "augment": str(args.augment),
        "seed": str(args.seed),
        "device": str(device),
        "precision": "bfloat16 autocast" if uses_bfloat16(device, args.float32) else "float32",
        "torch_version": torch.__version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def write_outputs(
    model: nn.Module,
    out: Path,
    metadata: dict[str, str],
    history: list[dict],
    mnist: Splits,
    predicted: torch.Tensor,
) -> None:
    """The training report, the history and the weights, each written atomically. All is
    computed before the first write, and the weights go last: an interrupted run leaves the
    previous weights, each file whole."""
    with stage("training report"):
        figure = report.draw_report(
            history, mnist.test_images, mnist.test_labels, predicted, metadata
        )
        picture = report.png_bytes(figure)
    write_atomically(report.report_path(out), picture)
    write_atomically(report.history_path(out), metadata["history"].encode())
    save_weights(model, out, metadata)
    print(f"saved {out}, its report and history beside it")


def train(args: argparse.Namespace) -> None:
    """The whole run: data, pictures, training, threshold, test, report and weights."""
    device = pick_device(args.device)
    bfloat16 = uses_bfloat16(device, args.float32)
    print(f"device {device}{' (bfloat16 autocast)' if bfloat16 else ''}  seed {args.seed}")
    started = time.perf_counter()  # training time includes making the pictures
    with stage("MNIST"):
        mnist = load_splits(args)
    made = synthesized(args, mnist)
    data = make_pictures(args, mnist, made, device)
    torch.manual_seed(args.seed)  # the model's start, whatever making the pictures drew
    model = build_model(args.members).to(device, memory_format=torch.channels_last)
    print(
        f"parameters {sum(p.numel() for p in model.parameters()):,}  members {args.members}  "
        f"training images {len(data.digits):,}  non-digits {len(data.others):,}  "
        f"segmentation junk {len(data.junk):,}  marks {len(data.marks):,}  "
        f"digits in other styles {len(data.styles)}"
    )
    x_val, y_val = to_inputs(mnist.val_images, device), mnist.val_labels.to(device)
    history = fit(model, data, x_val, y_val, args)
    with stage("validation pictures drawn as the app meets them"):
        val = validation_pictures(mnist, made, args.seed, device)
    min_confidence, declined = set_threshold(model, val)
    train_seconds = time.perf_counter() - started
    # One pass over the test set gives the accuracy, the confusion matrix and the misread digits.
    predicted = predict(model, to_inputs(mnist.test_images, device)).cpu()
    misread = len(report.misread(mnist.test_labels, predicted))
    test_acc = 1 - misread / len(mnist.test_images)
    print(
        f"test accuracy {test_acc:.2%} ({len(mnist.test_images):,} images, {misread:,} misread)  "
        f"training time {train_seconds:.0f}s"
    )
    facts = run_facts(test_acc, min_confidence, declined, data, train_seconds, history)
    write_outputs(model, args.out, run_metadata(args, device, **facts), history, mnist, predicted)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--members",
        type=int,
        default=MEMBERS,
        help=f"ConvNets in the ensemble, trained side by side (default {MEMBERS})",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help=f"default: {MEMBER_EPOCHS} / members, the same training time whatever the members "
        "(a fine-tune: finetune.EPOCHS)",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--lr",
        type=float,
        help=f"peak learning rate of the one-cycle schedule (default {PEAK_LR}; a fine-tune's: "
        "finetune.LR)",
    )
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--data-dir", type=Path, default=DATA_DIR, help="where MNIST is, or is downloaded to"
    )
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH, help="weights file to write")
    parser.add_argument(
        "--device", help="force a device (cpu, cuda, mps, xpu...); default: autodetect"
    )
    parser.add_argument(
        "--float32",
        action="store_true",
        help="compute in float32 on a CPU with AMX too, as a CPU without AMX does",
    )
    parser.add_argument(
        "--no-augment", dest="augment", action="store_false", help="train on plain MNIST"
    )
    parser.add_argument(
        "--limit", type=int, default=0, help=argparse.SUPPRESS
    )  # tests: a small subset
    add_finetune_flags(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.members <= MAX_MEMBERS:
        parser.error(f"--members must be from 1 to {MAX_MEMBERS}")
    if args.corrections is None:  # a fine-tune's defaults are its own (finetune.py)
        args.lr = PEAK_LR if args.lr is None else args.lr
        if args.epochs is None:
            args.epochs = max(1, round(MEMBER_EPOCHS / args.members))
    if (args.epochs is not None and args.epochs < 1) or args.batch_size < 1:
        parser.error("--epochs and --batch-size must be at least 1")
    return args


def add_finetune_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of a fine-tune on visitors' corrections (finetune.py)."""
    parser.add_argument(
        "--corrections",
        type=Path,
        metavar="DB",
        help="fine-tune on the accepted corrections in this store instead (finetune.py)",
    )
    parser.add_argument(
        "--from",
        dest="from_weights",
        type=Path,
        default=WEIGHTS_PATH,
        metavar="WEIGHTS",
        help="with --corrections: the weights to fine-tune (default: the shipped file); "
        "an ensemble keeps its members, and --members is ignored",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --corrections: write the weights even when the checks say no",
    )


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # epoch lines show up at once through `| tee`
    keep_freed_memory()
    arguments = parse_args()
    try:
        if arguments.corrections is not None:
            import finetune  # here: a full run needs none of the corrections' code

            sys.exit(finetune.finetune(arguments))
        train(arguments)
    except KeyboardInterrupt:
        sys.exit("\nInterrupted: nothing was saved, the previous weights file is untouched.")
