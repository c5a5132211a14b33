"""Glyphs -> the model -> what the drawing says: a digit, a number, or "not a digit".

    picture -> preprocess.ink -> segment.segment (the model reads every candidate glyph
    in one batch, and the best path gives the glyphs) -> the verdict -> the page or the API

Each glyph is read by the same ConvNet. A glyph is a digit when the model's top softmax
probability reaches `min_confidence`, the threshold stored in the weights' header (weights
trained with outlier exposure spread their probability over the ten digits for things that
are not digits). A drawing with any glyph that is not a digit is "not_a_digit" as a whole:
a number with a letter in it is not a number.
"""

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

import preprocess
import segment
from model import CLASS_NAMES
from preprocess import Glyph

MAX_DIGITS = 8
HINT = "Draw a digit or a number"
TOO_MANY = f"Too many marks to read: write a number of up to {MAX_DIGITS} digits."
NOT_A_DIGIT = "That does not look like a digit."
STATUSES = ("digit", "number", "not_a_digit", "empty", "unreadable")
ORDINALS = ("1st", "2nd", "3rd") + tuple(f"{n}th" for n in range(4, MAX_DIGITS + 1))


@dataclass(frozen=True)
class Reading:
    """What a drawing says, and the glyphs and probabilities it was read from."""

    status: str  # one of STATUSES
    text: str | None  # "7", "2026", or None when nothing was read
    message: str | None  # for people: the hint on an empty canvas, why it was not read...
    glyphs: list[Glyph]  # reading order (left to right)
    probabilities: torch.Tensor  # (len(glyphs), 10) softmax; (0, 10) when the model did not run
    min_confidence: float

    def is_digit(self) -> list[bool]:
        """For each glyph the model read: whether it is sure enough to call it a digit."""
        return _sure(self.probabilities, self.min_confidence)

    def as_json(self) -> dict:
        """The reading for programs (the README's API section states this contract)."""
        digits = [
            {
                "digit": CLASS_NAMES[int(p.argmax())] if sure else None,
                "confidence": round(float(p.max()), 4),
                "box": list(glyph.box),
            }
            for glyph, p, sure in zip(
                self.glyphs, self.probabilities, self.is_digit(), strict=False
            )
        ]
        return {"status": self.status, "text": self.text, "digits": digits, "message": self.message}


def read(
    image: np.ndarray | Image.Image | None, model: torch.nn.Module, min_confidence: float
) -> Reading:
    """Read a picture: the segmentation search groups its ink's pieces into glyphs, the model
    reading every candidate in one batch; then the verdict on the glyphs of the best path.
    A photo in which no sheet of paper or no ink can be found is `unreadable`, with a
    message that says what to do (never the drawing hint)."""
    nothing = torch.empty(0, len(CLASS_NAMES))
    if image is None:
        return Reading("empty", None, HINT, [], nothing, min_confidence)
    try:
        ink = preprocess.ink(image)
    except preprocess.ImageError as e:
        return unreadable(str(e), min_confidence)
    found, probabilities = segment.segment(ink, _classifier(model))
    found = preprocess.in_file_pixels(found, image)
    if not found:
        return Reading("empty", None, HINT, [], nothing, min_confidence)
    if probabilities is None or len(found) > MAX_DIGITS:
        # More marks than that are a long number, a line of text or a scribble in pieces:
        # rather than guess, say so and state the limit (the glyphs stay, for callers).
        return Reading("unreadable", None, TOO_MANY, found, nothing, min_confidence)
    sure = _sure(probabilities, min_confidence)
    if not all(sure):
        return Reading("not_a_digit", None, _why_not(sure), found, probabilities, min_confidence)
    text = "".join(CLASS_NAMES[i] for i in probabilities.argmax(dim=1).tolist())
    status = "digit" if len(found) == 1 else "number"
    return Reading(status, text, None, found, probabilities, min_confidence)


def _classifier(model: torch.nn.Module) -> segment.Classify:
    """The model as the search asks it: (N, 1, 28, 28) inputs -> (N, 10) probabilities."""

    def classify(inputs: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return torch.softmax(model(inputs), dim=1)

    return classify


def unreadable(message: str, min_confidence: float) -> Reading:
    """The reading of a file that is not a picture we can read, or of a photo with nothing
    to read on it; the message says what went wrong or what to do."""
    return Reading(
        "unreadable", None, message, [], torch.empty(0, len(CLASS_NAMES)), min_confidence
    )


def _sure(probabilities: torch.Tensor, min_confidence: float) -> list[bool]:
    return (probabilities.max(dim=1).values >= min_confidence).tolist()


def _why_not(sure: list[bool]) -> str:
    """Which marks are not digits, for people: "The 2nd and 4th marks do not look like digits."""
    if len(sure) == 1:
        return NOT_A_DIGIT
    marks = [ORDINALS[i] for i, ok in enumerate(sure) if not ok]
    if len(marks) == 1:
        return f"The {marks[0]} mark does not look like a digit."
    return f"The {', '.join(marks[:-1])} and {marks[-1]} marks do not look like digits."
