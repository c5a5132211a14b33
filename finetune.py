"""Fine-tune the reader on visitors' corrections, and keep it only if it reads them better
without forgetting what it knew.

    python train.py --corrections data/corrections.sqlite3              # the shipped weights
    python train.py --corrections DB --from W --out W2 [--force] [--epochs N] [--lr LR]

    the store's accepted corrections (corrections.py; nothing unreviewed)
    -> a seeded fifth of them held out, by picture
    -> the others read as the app reads them (reading.read: preprocess, then the segmentation
       search, with the --from weights at their threshold); their glyphs labelled digit by
       digit, or as non-digits for "not a digit"
    -> the --from weights measured: held-out corrections, MNIST and drawn validation digits,
       validation non-digits declined, MNIST test (reported only)
    -> train.fit from the --from weights: every batch is MNIST, the synthesised outliers as in
       the full run, and train.CORRECTIONS_PER_BATCH glyphs of corrections, all augmented
    -> the "not a digit" threshold set again (train.set_threshold), the same figures measured
    -> the weights, their report and history written (train.write_outputs) only when the
       held-out corrections read better and nothing else dropped past its allowance; else
       exit 3 and nothing written

Exit codes: 0 weights written; 3 refused (too few corrections, or the guard); 1 a store or
weights file that can't be read. The weights' header records the corrections (HEADER_KEYS).
"""

import argparse
import contextlib
import hashlib
import io
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import corrections
import preprocess
import reading
import report
import train
from augment import pen_paths
from model import ConvNet, Ensemble, WeightsError, load_model, read_metadata

# A fine-tune's own defaults (--epochs and --lr override them), measured on 1,000 corrections
# in a habit the shipped reader misreads (slashed zeros, harness.styles): one epoch learns
# them, but costs non-digits (a slashed 0 is close to the rings with marks inside that the
# reader learnt to decline): after 1 to 4 epochs at 2e-4 to 5e-4 it declined 1.1 to 2 points
# fewer validation non-digits, over the guard's 1. Longer, at a third of the full run's
# peak, it learns both: six epochs at 1e-3 declined as many as before (93.6% -> 93.8%) and
# read 194 of 200 held-out corrections (43 before). About 50 s of training on a 2-core CPU
# with AMX, all of MNIST and the synthesised outliers mixed in.
EPOCHS = 6
LR = 1e-3  # peak of the one-cycle schedule (train.optimizers_and_schedules); the full run: 3e-3
HELD_OUT_SHARE = 0.2  # of the corrections, by picture: they judge, and are never trained on
MIN_CORRECTIONS = 5  # fewer can't spare a fifth to judge by
# How much each figure may drop (points, as shares) for the new weights to be written: the
# issue's allowances. MNIST validation is 5,000 digits, so 0.1 point is 5 of them.
MAX_DROP = {"val": 0.001, "drawn": 0.01, "declined": 0.01}
REFUSED = 3  # exit code: nothing written (too few corrections, or the guard said no)
SHOWN_IDS = 120  # characters: the row ids go into the header beside their hash when this short
SPLIT_SALT = 23  # the held-out draw's own stream of the seed (not training's)
THRESHOLD_DRIFT = 0.005  # a header threshold further than this from the rule's is pointed out
FLOAT_SLACK = 1e-6  # float32 shares are off by about 1e-7; one validation image is 2e-4
# The keys this adds to the weights' header (about.py names them for people).
HEADER_KEYS = (
    "corrections",
    "corrections_held_out",
    "corrections_from",
    "corrections_rows",
    "corrections_accuracy",
    "from_corrections_accuracy",
    "from_val_accuracy",
    "drawn_val_accuracy",
    "from_drawn_val_accuracy",
    "from_val_nondigits_declined",
    "from_test_accuracy",
)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread for a while: reading.read's small batches (a few glyphs each)
    take 5 ms a picture on one thread and 15 times as long on two threads of a busy 2-core
    CPU, where the threads wait for each other (measured on this project's machines)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Refused(Exception):
    """The fine-tune can't or mustn't go on; str() says why, for people."""


@dataclass(frozen=True)
class Correction:
    """An accepted correction as the fine-tune uses it."""

    id: int
    picture: bytes  # PNG
    label: str  # "7", "407" or "not a digit" (corrections.valid_label), "" for no answer


@dataclass
class Glyphs:
    """The training corrections' glyphs and what became of each correction."""

    inputs: torch.Tensor  # (G, 1, 28, 28) in [0, 1], as reading.read cut them
    labels: torch.Tensor  # (G,) int64: the digit, or -1 for "not a digit"
    used: list[int]  # ids of the corrections whose glyphs are in
    counts: dict[str, int]  # corrections of each kind: digits, not a digit, skipped...


@dataclass
class Figures:
    """What the guard compares, for one set of weights. Shares in [0, 1]."""

    corrections_right: int  # held-out corrections read as their label
    corrections: int  # held-out corrections
    val: float  # MNIST validation digits read right
    drawn: float  # drawn validation digits read right (argmax)
    declined: float  # validation non-digits under `threshold`
    test: float  # MNIST test, reported only
    threshold: float  # the "not a digit" threshold by the full run's rule (see measure)


def accepted_corrections(path: Path) -> list[Correction]:
    """The store's accepted corrections, oldest first, read without changing the store
    (corrections.read_rows). Raises corrections.CorrectionsError, with what is wrong, for a
    missing file, one that is not a corrections store, or a failed read."""
    return [
        Correction(row.id, row.picture, corrections.valid_label(row.label) or "")
        for row in corrections.read_rows(path, "accepted")
    ]


def hold_out(rows: list[Correction], seed: int) -> tuple[list[Correction], list[Correction]]:
    """(training, held out): a seeded HELD_OUT_SHARE of the corrections held out, by picture
    (copies of one PNG stay on one side). Raises Refused for fewer than MIN_CORRECTIONS."""
    if not rows:
        raise Refused("The store has no accepted corrections: review some first.")
    if len(rows) < MIN_CORRECTIONS:
        raise Refused(
            f"Only {len(rows)} accepted correction(s): at least {MIN_CORRECTIONS} are needed "
            "to hold a fifth out to judge the fine-tune by."
        )
    pictures = {}  # the picture's hash -> its rows, in order of first appearance
    for row in rows:
        pictures.setdefault(hashlib.sha256(row.picture).digest(), []).append(row)
    groups = list(pictures.values())
    wanted = round(HELD_OUT_SHARE * len(rows))
    held, kept = [], []
    for k in np.random.default_rng([seed, SPLIT_SALT]).permutation(len(groups)):
        (held if len(held) < wanted else kept).extend(groups[k])
    if not kept:
        raise Refused("Every accepted correction is the same picture: nothing left to train on.")
    return kept, held


def read_correction(row: Correction, model: torch.nn.Module, threshold: float) -> reading.Reading:
    """The correction's picture read as the app reads it (preprocess.read_image, then
    reading.read); "unreadable" for a picture that can't be decoded."""
    try:
        picture = preprocess.read_image(io.BytesIO(row.picture))
    except preprocess.ImageError as e:
        return reading.unreadable(str(e), threshold)
    return reading.read(picture, model, threshold)


def as_label(found: reading.Reading) -> str | None:
    """A reading as a visitor's label says it: "407", "not a digit", or None."""
    return corrections.read_as_label({"status": found.status, "text": found.text})


def correction_glyphs(rows: list[Correction], model: torch.nn.Module, threshold: float) -> Glyphs:
    """Each correction read as the app reads it, its glyphs labelled by the visitor's answer:
    a number digit by digit when it has as many glyphs as digits; "not a digit" all of its
    glyphs as non-digits (label -1). Skipped: a glyph count that doesn't match (the reader
    grouped the ink otherwise: which glyph is which digit is unknown), no glyph or too many
    (an empty or unreadable picture: the app reads none), and a label that is no answer."""
    inputs, labels, used = [], [], []
    counts = dict.fromkeys(
        ("digits", "not a digit", "count differs", "no glyphs or too many", "no answer"), 0
    )
    for row in rows:
        found = read_correction(row, model, threshold) if row.label else None
        if found is None:
            kind = "no answer"
        elif found.status in ("empty", "unreadable"):
            kind = "no glyphs or too many"
        elif row.label == corrections.NOT_A_DIGIT:
            kind, digits = "not a digit", [-1] * len(found.glyphs)
        elif len(row.label) == len(found.glyphs):
            kind, digits = "digits", [int(c) for c in row.label]
        else:
            kind = "count differs"
        counts[kind] += 1
        if kind in ("digits", "not a digit"):
            inputs += [glyph.input for glyph in found.glyphs]
            labels += digits
            used.append(row.id)
    stacked = torch.cat(inputs) if inputs else torch.empty(0, 1, 28, 28)
    return Glyphs(stacked, torch.tensor(labels, dtype=torch.int64), used, counts)


def corrections_right(rows: list[Correction], model: torch.nn.Module, threshold: float) -> int:
    """How many corrections the weights read as their label, the way the app reads them."""
    model.eval()
    with one_thread():
        return sum(as_label(read_correction(row, model, threshold)) == row.label for row in rows)


def measure(
    model: torch.nn.Module,
    threshold: float,
    held: list[Correction],
    val: dict[str, torch.Tensor],
    mnist: train.Splits,
    device: torch.device,
) -> tuple[Figures, torch.Tensor]:
    """The figures of weights, and their MNIST test predictions (CPU). The held-out
    corrections are read at `threshold` (the app's: the weights' own); the non-digits are
    declined at the threshold that the full run's rule (train.choose_min_confidence) sets
    for these weights on these validation pictures (train.validation_pictures, `val`), so
    that before and after are compared at one operating point: 1% of drawn digits declined.
    (A header's threshold was set on the validation pictures of the run that wrote it, which
    a change to the redraw makes differ.) `model` is on `device` and is left there."""
    x_val, y_val = train.to_inputs(mnist.val_images, device), mnist.val_labels.to(device)
    predicted = train.predict(model, train.to_inputs(mnist.test_images, device)).cpu()
    rule = train.choose_min_confidence(model, val["digits"])
    declined = (train.top_probabilities(model, val["nondigits"]) < rule).float().mean()
    val_right, drawn_right = (train.accuracy(model, x, y_val) for x in (x_val, val["digits"]))
    test_right = (predicted == mnist.test_labels).float().mean().item()
    right = corrections_right(held, model.cpu(), threshold)  # reading.read reads on the CPU
    model.to(device)
    figures = Figures(right, len(held), val_right, drawn_right, declined.item(), test_right, rule)
    return figures, predicted


def guard(before: Figures, after: Figures) -> list[str]:
    """What stops the new weights from being written: empty when they may be."""
    failed = []
    if after.corrections_right <= before.corrections_right:
        failed.append(
            f"the held-out corrections read no better ({before.corrections_right} -> "
            f"{after.corrections_right} of {after.corrections} right)"
        )
    for key, name, old, new in (
        ("val", "MNIST validation digits", before.val, after.val),
        ("drawn", "drawn validation digits", before.drawn, after.drawn),
        ("declined", "non-digits declined", before.declined, after.declined),
    ):
        if old - new > MAX_DROP[key] + FLOAT_SLACK:
            failed.append(
                f"{name} dropped by {100 * (old - new):.2f} points ({old:.2%} -> {new:.2%}; "
                f"at most {100 * MAX_DROP[key]:g} allowed)"
            )
    return failed


def print_figures(before: Figures, after: Figures) -> None:
    """The before and after figures as a small table."""
    print(f"{'':34s}{'before':>10s}{'after':>10s}")
    print(
        f"{'held-out corrections read right':34s}"
        f"{before.corrections_right:>6d}/{before.corrections:<3d}"
        f"{after.corrections_right:>6d}/{after.corrections:<3d}"
    )
    for name, old, new in (
        ("MNIST validation digits", before.val, after.val),
        ("drawn validation digits", before.drawn, after.drawn),
        ("validation non-digits declined", before.declined, after.declined),
        ("MNIST test (reported only)", before.test, after.test),
    ):
        print(f"{name:34s}{old:>10.2%}{new:>10.2%}")
    name = "not-a-digit threshold by the rule"
    print(f"{name:34s}{before.threshold:>10.3f}{after.threshold:>10.3f}")


def rows_digest(ids: list[int]) -> str:
    """The sha256 of the sorted row ids as text ("1,2,3"), with the ids themselves (runs
    as "1-40") when they take at most SHOWN_IDS characters."""
    ids = sorted(ids)
    digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()
    runs, start = [], 0
    for k in range(1, len(ids) + 1):
        if k == len(ids) or ids[k] != ids[k - 1] + 1:
            first, last = ids[start], ids[k - 1]
            runs.append(str(first) if first == last else f"{first}-{last}")
            start = k
    shown = ",".join(runs)
    return f"{digest} (ids {shown})" if len(shown) <= SHOWN_IDS else digest


def header_facts(
    before: Figures,
    after: Figures,
    glyphs: Glyphs,
    held: list[Correction],
    rows: list[Correction],
    from_sha: str,
) -> dict[str, str]:
    """The header's record of the corrections (HEADER_KEYS): how many trained on and held
    out, the --from weights' sha256, the hash of the accepted rows read (training, held out
    and skipped: the split is drawn from all of them), and the before/after figures."""
    return {
        "corrections": str(len(glyphs.used)),
        "corrections_held_out": str(len(held)),
        "corrections_from": from_sha,
        "corrections_rows": rows_digest([row.id for row in rows]),
        "corrections_accuracy": f"{after.corrections_right / after.corrections:.4f}",
        "from_corrections_accuracy": f"{before.corrections_right / before.corrections:.4f}",
        "from_val_accuracy": f"{before.val:.4f}",
        "drawn_val_accuracy": f"{after.drawn:.4f}",
        "from_drawn_val_accuracy": f"{before.drawn:.4f}",
        "from_val_nondigits_declined": f"{before.declined:.4f}",
        "from_test_accuracy": f"{before.test:.4f}",
    }


def load_start(args: argparse.Namespace) -> tuple[ConvNet | Ensemble, float, str]:
    """The --from weights (on the CPU, in eval mode), their "not a digit" threshold and
    their sha256. Raises WeightsError, with what to do, when they can't be used."""
    model = load_model(args.from_weights)
    try:
        threshold = float(read_metadata(args.from_weights)["min_confidence"])
    except (KeyError, ValueError):
        raise WeightsError(
            f"{args.from_weights} has no 'not a digit' threshold (min_confidence) in its "
            "header: start from weights that train.py wrote."
        ) from None
    args.members = len(model.members) if isinstance(model, Ensemble) else 1
    return model, threshold, corrections.model_sha256(args.from_weights)


def prepared(
    args: argparse.Namespace, glyphs: Glyphs, device: torch.device
) -> tuple[train.Splits, train.Pictures, dict[str, torch.Tensor]]:
    """MNIST, the synthesised pictures (train.synthesized: the full run's, from its cache),
    the training pictures with the corrections' glyphs mixed in, and the validation
    pictures, all as the full run makes them."""
    with train.stage("MNIST"):
        mnist = train.load_splits(args)
    made = train.synthesized(args, mnist)
    data = train.make_pictures(args, mnist, made, device)
    inputs = glyphs.inputs.to(device)
    data = data._replace(
        corrections=inputs,
        correction_labels=glyphs.labels.to(device),
        correction_paths=pen_paths(inputs) if args.augment else None,
    )
    with train.stage("validation pictures drawn as the app meets them"):
        val = train.validation_pictures(mnist, made, args.seed, device)
    return mnist, data, val


def finetune(args: argparse.Namespace) -> int:
    """The whole fine-tune (see the module's docstring); the process's exit code."""
    args.epochs = EPOCHS if args.epochs is None else args.epochs
    args.lr = LR if args.lr is None else args.lr
    try:
        rows = accepted_corrections(args.corrections)
        kept, held = hold_out(rows, args.seed)
        model, threshold, from_sha = load_start(args)
    except (corrections.CorrectionsError, WeightsError) as e:
        print(e, file=sys.stderr)
        return 1
    except Refused as e:
        print(e, file=sys.stderr)
        return REFUSED
    device = train.pick_device(args.device)
    print(f"device {device}  seed {args.seed}  from {args.from_weights} ({from_sha[:12]})")
    print(f"{len(rows)} accepted corrections: {len(kept)} to train on, {len(held)} held out")
    started = time.perf_counter()  # as in the full run, the time includes making the data
    with train.stage("reading the corrections as the app does"), one_thread():
        glyphs = correction_glyphs(kept, model, threshold)
    print("corrections: " + ", ".join(f"{kind} {n}" for kind, n in glyphs.counts.items()))
    if not glyphs.used:
        print("No correction gave glyphs to train on: nothing to learn.", file=sys.stderr)
        return REFUSED
    mnist, data, val = prepared(args, glyphs, device)
    model = model.to(device, memory_format=torch.channels_last)
    with train.stage("the --from weights' figures"):
        before, _ = measure(model, threshold, held, val, mnist, device)
    if abs(before.threshold - threshold) > THRESHOLD_DRIFT:
        print(
            f"(the --from weights' header threshold is {threshold:.3f}, the full run's rule "
            f"sets {before.threshold:.3f} on these validation pictures: non-digits declined "
            "are compared at the rule's thresholds)"
        )
    torch.manual_seed(args.seed)  # dropout's draws
    x_val, y_val = train.to_inputs(mnist.val_images, device), mnist.val_labels.to(device)
    history = train.fit(model, data, x_val, y_val, args)
    threshold, declined = train.set_threshold(model, val)
    seconds = time.perf_counter() - started
    after, predicted = measure(model, threshold, held, val, mnist, device)
    print_figures(before, after)
    failed = guard(before, after)
    for reason in failed:
        print(f"check failed: {reason}", file=sys.stderr)
    if failed and not args.force:
        print("Nothing written: the weights stay as they were (--force writes anyway).")
        return REFUSED
    if failed:
        print("Writing them anyway (--force).")
    history = [first_row(before), *history[:-1], last_row(history[-1], after)]
    facts = header_facts(before, after, glyphs, held, rows, from_sha)
    test_accuracy = history[-1]["test_accuracy"]  # as its history row rounded it
    facts |= train.run_facts(test_accuracy, threshold, declined, data, seconds, history)
    metadata = train.run_metadata(args, device, **facts)
    train.write_outputs(model.cpu(), args.out, metadata, history, mnist, predicted)
    return 0


def first_row(before: Figures) -> dict:
    """The history's epoch 0: the --from weights, before the fine-tune."""
    return report.history_row(epoch=0, **_figure_columns(before))


def last_row(row: dict, after: Figures) -> dict:
    """The last epoch's row, with the figures the guard judged by."""
    return row | report.history_row(**_figure_columns(after))


def _figure_columns(figures: Figures) -> dict[str, float]:
    return {
        "test_accuracy": figures.test,
        "val_accuracy": figures.val,
        "drawn_val_accuracy": figures.drawn,
        "val_nondigits_declined": figures.declined,
        "corrections_accuracy": figures.corrections_right / figures.corrections,
    }
