"""How well and how fast the app reads photos and scans of digits written on paper.

    nice -n 10 .venv/bin/python -m benchmarks.photos [--count 12] [--seed 0] [--calls 30]
        [--failures DIR]

MNIST test digits (never trained on), and numbers of 2 to 4 of them (not touching), are
written in ballpoint or pencil and photographed or scanned by harness/photographed.py: even
light, light falloff, the desk around the sheet, a hard shadow, ruled and squared paper,
blur, small ink (under 0.5% of the picture) and flatbed scans, at sizes from 1200x900 to
4000x3000 (12 megapixels), saved as JPEG. Each file's bytes go through the app's upload
path, preprocess.read_image then reading.read, and the benchmark prints the share read
exactly (goal >= 95%), by condition, size and ink coverage, and what the others were read as;
beside it, the same ink read off a clean canvas: the reader's own ceiling on these digits
(some MNIST test digits are hard to read on paper too).
Then the time to read a 12-megapixel JPEG, decoding included (goal: p50 <= 150 ms), with one
torch thread as in the server. --failures writes the photos not read right to DIR.
"""

import argparse
import collections
import io
import statistics
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

import preprocess
import reading
from harness import photographed
from mnist import DATA_DIR, load_mnist
from model import load_model, read_metadata

GOAL = 0.95
SPEED_GOAL_MS = 150
SPEED_GRAIN = 6.0  # levels of extra noise in the timed photos
LOW_INK = 0.005  # "photos with less than 0.5% ink coverage are read, not called empty"
KINDS = {"digit": (1, 1), "number": (2, 4)}  # how many digits each kind has


class Outcome(NamedTuple):
    condition: str
    kind: str
    megapixels: float
    coverage: float
    truth: str
    status: str
    text: str | None
    message: str | None
    clean_text: str | None  # the same ink read off a clean white canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=12, help="per condition and kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calls", type=int, default=30, help="timed reads of 12 MP photos")
    parser.add_argument("--failures", type=Path, help="write the photos not read right here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model()
    threshold = float(read_metadata()["min_confidence"])
    images, labels = (t.numpy() for t in load_mnist(DATA_DIR, train=False))
    rng = np.random.default_rng(args.seed)

    started = time.perf_counter()
    outcomes = []
    for condition in photographed.CONDITIONS:
        for kind, (fewest, most) in KINDS.items():
            for n in range(args.count):
                chosen = rng.choice(len(images), rng.integers(fewest, most, endpoint=True))
                photo = photographed.photograph(list(images[chosen]), condition, rng)
                data = photographed.jpeg(photo.picture, rng)
                read = reading.read(preprocess.read_image(io.BytesIO(data)), model, threshold)
                truth = "".join(str(labels[i]) for i in chosen)
                outcome = Outcome(
                    condition,
                    kind,
                    photo.picture.width * photo.picture.height / 1e6,
                    photo.coverage(),
                    truth,
                    read.status,
                    read.text,
                    read.message,
                    reading.read(photo.clean(), model, threshold).text,
                )
                outcomes.append(outcome)
                if args.failures and read.text != truth:
                    args.failures.mkdir(parents=True, exist_ok=True)
                    name = f"{condition.replace(' ', '-')}-{kind}-{n}-{truth}-as-{read.text}.jpg"
                    (args.failures / name).write_bytes(data)
                    photo.clean().save(args.failures / name.replace(".jpg", "-ink.png"))
    print(
        f"{len(outcomes)} photos made and read in {time.perf_counter() - started:.0f} s "
        f"(seed {args.seed}); weights' min_confidence {threshold}"
    )
    report_accuracy(outcomes)
    report_speed(images, rng, model, threshold, args.calls)


def report_accuracy(outcomes: list[Outcome]) -> None:
    print(
        f"\nRead exactly (goal >= {GOAL:.0%}): digits / numbers / all; the same ink on a clean"
        " canvas; what the others were"
    )
    groups = {c: [o for o in outcomes if o.condition == c] for c in photographed.CONDITIONS}
    sizes = sorted({round(o.megapixels, 1) for o in outcomes})
    groups |= {f"{mp} MP": [o for o in outcomes if round(o.megapixels, 1) == mp] for mp in sizes}
    groups[f"ink < {LOW_INK:.1%}"] = [o for o in outcomes if o.coverage < LOW_INK]
    groups["all"] = outcomes
    for name, group in groups.items():
        if not group:
            continue
        shares = [
            f"{np.mean([o.text == o.truth for o in group if o.kind == kind]):6.1%}"
            if any(o.kind == kind for o in group)
            else f"{'-':>6}"
            for kind in KINDS
        ]
        exact = np.mean([o.text == o.truth for o in group])
        clean = np.mean([o.clean_text == o.truth for o in group])
        others = collections.Counter(_what(o) for o in group if o.text != o.truth)
        print(
            f"  {name:<14} {' / '.join(shares)} / {exact:6.1%} of {len(group):<4}"
            f"{'ok ' if exact >= GOAL else 'LOW'} {clean:6.1%}  "
            + (", ".join(f"{w} x{n}" for w, n in others.most_common(4)) or "-")
        )
    lost = [o for o in outcomes if o.clean_text == o.truth and o.text != o.truth]
    found = [o for o in outcomes if o.clean_text != o.truth and o.text == o.truth]
    print(
        f"  read right on a clean canvas but not in the photo: {len(lost)} "
        f"({', '.join(sorted({o.condition for o in lost})) or '-'}); the other way: {len(found)}"
    )
    low = [o for o in outcomes if o.coverage < LOW_INK]
    empty = sum(o.status in ("empty", "unreadable") for o in low)
    print(
        f"  photos with under {LOW_INK:.1%} ink: {len(low)}, called empty or unreadable: {empty}; "
        f"ink coverage median {np.median([o.coverage for o in outcomes]):.2%}"
    )


def report_speed(images, rng, model, threshold: float, calls: int) -> None:
    """The time to read a 12-megapixel JPEG: decode, preprocess, model, verdict. A phone's
    12-megapixel JPEG is 2-5 MB (the paper's texture, sensor noise): the photos get extra
    grain and quality 92, to be as large, since decoding time grows with the file."""
    files = []
    for condition in ("even light", "desk border", "hard shadow", "ruled paper"):
        chosen = rng.choice(len(images), 2)
        photo = photographed.photograph(
            list(images[chosen]), condition, rng, photographed.TWELVE_MP
        )
        grain = rng.normal(0, SPEED_GRAIN, (*photo.picture.size[::-1], 1)).astype(np.float32)
        picture = np.clip(np.asarray(photo.picture) + grain, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, "JPEG", quality=92)
        files.append(buffer.getvalue())

    def read(data: bytes) -> reading.Reading:
        return reading.read(preprocess.read_image(io.BytesIO(data)), model, threshold)

    for data in files:
        read(data)  # warm-up
    times = []
    for i in range(calls):
        started = time.perf_counter()
        read(files[i % len(files)])
        times.append((time.perf_counter() - started) * 1e3)
    decode = []
    for i in range(calls):
        started = time.perf_counter()
        preprocess.read_image(io.BytesIO(files[i % len(files)]))
        decode.append((time.perf_counter() - started) * 1e3)
    p50 = statistics.median(times)
    print(
        f"\n12-megapixel JPEG ({np.mean([len(f) for f in files]) / 1e6:.1f} MB), read in-process: "
        f"p50 {p50:.0f} ms {'ok ' if p50 <= SPEED_GOAL_MS else 'SLOW'} (goal <= {SPEED_GOAL_MS}),"
        f" p90 {np.percentile(times, 90):.0f} ms; of which read_image p50 "
        f"{statistics.median(decode):.0f} ms ({calls} calls)"
    )


def _what(outcome: Outcome) -> str:
    if outcome.status in ("digit", "number"):
        return f"misread ({outcome.kind})"
    return outcome.status


if __name__ == "__main__":
    main()
