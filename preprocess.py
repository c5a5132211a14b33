"""Any picture of a digit or a number -> the model's inputs, made the way MNIST was made.

MNIST digits were cropped to their ink, scaled so the longer side is 20 pixels and placed
in a 28x28 field with their centre of mass at the centre. A canvas or a photo resized
whole to 28x28 looks nothing like that when the digit is small, thin or off-centre, so
every picture the app sees (sketch, upload, API call) goes through here:

    composite transparency -> grayscale -> ink white on black (a photo: the sheet, then the
    ink on it, photo.py) -> drop faint noise (`ink`) -> [segment.py: connected pieces,
    grouped into glyphs] -> for each glyph: crop to its own ink -> 20 px longer side
    -> centre of mass at centre (`glyph`)

Which ink makes a glyph (one piece, or several drawn with a pen lift; digits that touch are
one piece) is the segmentation search's choice (segment.py), made with the model.
`to_model_input` reads the whole picture as one digit, through the same recipe. Both `ink`
and `to_model_input` raise ImageError, with what to do, for a photo in which no sheet of
paper or no ink is found.

This is the only module that touches pixels on the way in; the input contract itself
(shape, range, polarity) is stated in model.py.
"""

import base64
import binascii
import warnings
from io import BytesIO
from math import ceil
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps
from scipy import ndimage

import photo
from model import DIGIT_BOX, IMAGE_SIZE

MNIST_CENTRE = 14.0  # where MNIST's centres of mass sit (row and column; measured on the test set)
WORK_SIDE = 256  # bigger pictures are shrunk towards this first: a 20 px digit needs no more
MAX_PIXELS = 100_000_000  # a larger file is refused before it is decoded (10,000 x 10,000 is fine)
DRAFT_SIDE = 2 * WORK_SIDE  # a big JPEG is decoded at a reduced scale, no smaller than this
DECODED_SCALE = "decoded_scale"  # Image.info key: file pixels per decoded pixel (x, y)
MIN_CONTRAST = 0.1  # darkest ink vs paper, on a 0-1 scale; below it the picture is blank
NOISE_LEVEL = (
    0.2  # ink fainter than this fraction of the strongest ink is paper grain or JPEG noise
)
MIN_DIGIT_FRACTION = 0.04  # ink spanning less of the picture's longer side is a speck, not a digit
#                 (0.1% of MNIST test digits redrawn with pens up to 30% of their size are)
SAMPLE_STEP = 4  # every 4th pixel each way is plenty to judge the background and the ink...
SAMPLE_SIDE = 64  # ...as long as that leaves 64 pixels a side
FLAT_SHADE = 0.5 / 255  # a canvas's background is one shade exactly (of 256)...
FLAT_SHARE = 0.5  # ...over at least half of a white or black picture,
FLAT_COLOUR_SHARE = 0.9  # or nearly all of a coloured one; anything else is read as a photo

STANDARD_MODES = ("L", "LA", "RGB", "RGBA")
UNREADABLE = "That image could not be read: send a PNG, JPEG or WebP of a digit or a number."
PNG_DATA_URL = "data:image/png;base64,"
NOT_A_PNG = "The drawing could not be read: the canvas sent something other than a PNG."
TOO_BIG_DRAWING = "The drawing could not be read: a picture over {:,} pixels is not the canvas's."
EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)  # diagonal pixels of a stroke touch


class Glyph(NamedTuple):
    """One digit's worth of ink, ready for the model, and where it was found."""

    input: torch.Tensor  # (1, 1, 28, 28), as to_model_input makes it
    box: tuple[int, int, int, int]  # left, top, right, bottom (exclusive) in the input's pixels


class ImageError(ValueError):
    """The input is not a picture we can read; the message is meant for the visitor."""


def read_image(path: str | Path | BinaryIO) -> Image.Image:
    """Decode an image file, upright (EXIF orientation applied), or raise ImageError.

    A JPEG much bigger than the working size (a phone's photo) is decoded at 1/2, 1/4 or
    1/8 of its size (libjpeg's DCT scaling, PIL's draft mode): several times faster, and
    nothing is lost, since it is shrunk to the working size anyway. Such a picture carries
    its scale in `info[DECODED_SCALE]`, so that boxes can be given in the file's pixels
    (`in_file_pixels`).
    """
    too_big = f"That image is too big: please send one under {MAX_PIXELS // 1_000_000} megapixels."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS rules
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise ImageError(too_big)
                if image.format == "JPEG" and max(width, height) > 2 * DRAFT_SIDE:
                    shrink = max(width, height) / DRAFT_SIDE  # draft keeps at least this size
                    image.draft(image.mode, (ceil(width / shrink), ceil(height / shrink)))
                image.load()
                scale = (width / image.size[0], height / image.size[1])
                upright = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError:
        raise ImageError(too_big) from None
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, ImageError):
            raise
        raise ImageError(UNREADABLE) from None
    if scale != (1, 1):
        turned = upright.size != image.size
        upright.info[DECODED_SCALE] = scale[::-1] if turned else scale
    return upright


def read_data_url(url: object, max_pixels: int) -> Image.Image:
    """Decode a PNG data URL ("data:image/png;base64,..."), as a canvas sends its picture,
    or raise ImageError. A picture over `max_pixels` is refused before it is decoded: by the
    length of its text, then by the size in its header."""
    if not isinstance(url, str) or not url.startswith(PNG_DATA_URL):
        raise ImageError(NOT_A_PNG)
    too_big = TOO_BIG_DRAWING.format(max_pixels)
    if len(url) > len(PNG_DATA_URL) + 4 * max_pixels * 4 // 3:  # RGBA, uncompressed, in base64
        raise ImageError(too_big)
    try:
        data = base64.b64decode(url[len(PNG_DATA_URL) :], validate=True)
        with Image.open(BytesIO(data), formats=["PNG"]) as image:
            if image.size[0] * image.size[1] > max_pixels:
                raise ImageError(too_big)
            image.load()  # decoded now, while its bytes are open
            return image
    except Image.DecompressionBombError:  # PIL's own limit, far above ours, from the header
        raise ImageError(too_big) from None
    except (binascii.Error, OSError, SyntaxError, ValueError) as e:
        if isinstance(e, ImageError):
            raise
        raise ImageError(NOT_A_PNG) from None


def in_file_pixels(found: list["Glyph"], image: np.ndarray | Image.Image) -> list["Glyph"]:
    """The glyphs with their boxes in the file's pixels, for a picture that read_image
    decoded at a reduced scale (the same glyphs otherwise)."""
    info = image.info if isinstance(image, Image.Image) else {}
    if DECODED_SCALE not in info:
        return found
    sx, sy = info[DECODED_SCALE]
    width, height = round(image.size[0] * sx), round(image.size[1] * sy)
    return [
        g._replace(
            box=(
                round(g.box[0] * sx),
                round(g.box[1] * sy),
                min(round(g.box[2] * sx), width),
                min(round(g.box[3] * sy), height),
            )
        )
        for g in found
    ]


def to_model_input(image: np.ndarray | Image.Image) -> torch.Tensor | None:
    """The (1, 1, 28, 28) tensor of all the picture's ink read as one digit, or None when
    there is no digit to read. Raises ImageError for a photo with no sheet or no ink."""
    ink = _ink(_grayscale(image)[0])
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    if rows.size == 0:
        return None
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if max(bottom - top, right - left) < MIN_DIGIT_FRACTION * max(ink.shape):
        return None  # a speck or a stray click
    return _model_input(ink[top:bottom, left:right])


class Ink(NamedTuple):
    """A picture's ink at the working scale, and how it maps back to the picture."""

    strength: np.ndarray  # (H, W) float32 in [0, 1], white on black; paper at 0
    factor: int  # each ink pixel is factor x factor of the picture's pixels
    size: tuple[int, int]  # the picture's width and height, pixels


def ink(image: np.ndarray | Image.Image) -> Ink:
    """The picture's ink (white on black, paper, lighting and noise removed), shrunk to
    about WORK_SIDE a side. Raises ImageError, with what to do, for a photo in which no
    sheet of paper or no ink can be found."""
    gray, factor = _grayscale(image)
    height, width = (
        np.asarray(image).shape[:2] if isinstance(image, np.ndarray) else image.size[::-1]
    )
    return Ink(_ink(gray), factor, (width, height))


def glyph(ink: Ink, own: np.ndarray, box: tuple[int, int, int, int]) -> Glyph:
    """The glyph made of the ink inside `box` (top, bottom, left, right, ink pixels) where
    `own` (a boolean array of the box's shape) is true; its box in the picture's pixels."""
    top, bottom, left, right = box
    width, height = ink.size
    f = ink.factor
    picture_box = (left * f, top * f, min(right * f, width), min(bottom * f, height))
    return Glyph(_model_input(ink.strength[top:bottom, left:right] * own), picture_box)


def _model_input(ink: np.ndarray) -> torch.Tensor:
    """One digit's ink, cropped to it, as MNIST made its digits: (1, 1, 28, 28)."""
    return torch.from_numpy(_centre(_fit_box(ink))).view(1, 1, IMAGE_SIZE, IMAGE_SIZE)


def _grayscale(image: np.ndarray | Image.Image) -> tuple[np.ndarray, int]:
    """Float grayscale in [0, 1], at most about WORK_SIDE a side, transparency composited,
    and the factor it was shrunk by (each of its pixels is factor x factor of the input's)."""
    image = _standard_mode(image if isinstance(image, Image.Image) else _from_array(image))
    factor = max(1, max(image.size) // WORK_SIDE)
    if factor > 1:
        image = image.reduce(factor)  # box average, alpha-weighted for LA and RGBA
    if "A" not in image.mode:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255, factor
    gray, alpha = np.moveaxis(np.asarray(image.convert("LA"), dtype=np.float32) / 255, -1, 0)
    # A transparent pixel is background whatever colour it stores (a canvas stores black), so
    # it takes the shade opposite to the ink: white behind dark ink, black behind light ink.
    opaque = alpha.sum()
    background = 1.0 if opaque == 0 or (gray * alpha).sum() < 0.5 * opaque else 0.0
    return gray * alpha + background * (1 - alpha), factor


def _from_array(array: np.ndarray) -> Image.Image:
    """A PIL image from an H x W (x 1, 2, 3 or 4) array of uint8, uint16, bool or float."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise ImageError(f"Expected a grayscale, RGB or RGBA image, got an array of {array.shape}.")
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = np.nan_to_num(array.astype(np.float32))
        array = array * 255 if array.max(initial=0) <= 1 else array
        array = np.clip(array, 0, 255).round().astype(np.uint8)
    return Image.fromarray(array)  # the mode follows the shape: L, LA, RGB or RGBA


def _standard_mode(image: Image.Image) -> Image.Image:
    """The same picture as L, LA, RGB or RGBA (16-bit, palette, CMYK... converted)."""
    if image.mode in STANDARD_MODES:
        return image
    if image.mode.startswith("I") or image.mode == "F":  # 16/32-bit integer or float gray
        values = np.asarray(image, dtype=np.float32)
        top = 65535 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255
        if image.mode == "F" and values.max(initial=0) <= 1:
            top = 1
        return Image.fromarray(np.clip(values * (255 / top), 0, 255).round().astype(np.uint8))
    if image.mode in ("P", "PA", "La", "RGBa") or "transparency" in image.info:
        return image.convert("RGBA")
    return image.convert("RGB")


def _ink(gray: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1], white on black; paper and faint noise at 0.

    A clean canvas (one flat background shade) is read directly: the ink is what differs
    from its background, on the side most of the picture is not. Anything else is a photo
    or a scan, read by photo.ink. Raises ImageError, with what to do, for a photo in which
    no sheet of paper or no ink can be found.
    """
    step = _sample_step(gray.shape)
    sample = gray[::step, ::step]
    darkest, paper, lightest = np.percentile(sample, [1, 50, 99])
    if not _flat_background(sample, paper):
        found = photo.ink(gray)
        if found is None or not _has_a_digit(found > 0):
            raise ImageError(photo.PHOTO_HINT)
        return found
    if lightest - paper > paper - darkest:  # most of a picture is paper: ink is the far side
        gray, paper = 1 - gray, 1 - paper
    ink = np.clip(paper - gray, 0, None)
    peak = ink.max(initial=0)
    if peak < MIN_CONTRAST:
        return np.zeros_like(ink)
    ink /= peak
    ink[ink < NOISE_LEVEL] = 0
    return ink


def _has_a_digit(ink: np.ndarray) -> bool:
    """Whether any piece of a boolean ink picture is big enough to be a digit (spans at
    least MIN_DIGIT_FRACTION of the picture's longer side; a speck does not)."""
    labels, _ = ndimage.label(ink, structure=EIGHT_NEIGHBOURS)
    least = MIN_DIGIT_FRACTION * max(ink.shape)
    return any(
        max(r.stop - r.start, c.stop - c.start) >= least for r, c in ndimage.find_objects(labels)
    )


def _flat_background(sample: np.ndarray, median: float) -> bool:
    """Whether a sample of the picture's pixels, whose median is given, is a clean canvas:
    most of it one shade exactly, white or black (a sketchpad, a drawing program), or nearly
    all of it one shade of any colour. A photo's paper is neither: it has grain and uneven
    light, and even where shrinking smooths them away, a shadow or a desk is a second shade
    over much of it."""
    share = np.count_nonzero(np.abs(sample - median) <= FLAT_SHADE) / sample.size
    extreme = min(median, 1 - median) <= FLAT_SHADE
    return share >= (FLAT_SHARE if extreme else FLAT_COLOUR_SHARE)


def _sample_step(shape: tuple[int, ...]) -> int:
    """Sample every SAMPLE_STEP-th pixel each way, or more in a small picture."""
    return max(1, min(SAMPLE_STEP, min(shape) // SAMPLE_SIDE))


def _fit_box(ink: np.ndarray) -> np.ndarray:
    """The ink scaled (anti-aliased) so its longer side is DIGIT_BOX, aspect ratio kept."""
    height, width = ink.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = np.asarray(Image.fromarray(ink).resize(size, Image.BILINEAR))
    return np.clip(digit / digit.max(), 0, 1)  # strongest stroke at full white, as in MNIST


def _centre(digit: np.ndarray) -> np.ndarray:
    """The digit in an IMAGE_SIZE square, its centre of mass where MNIST puts it."""
    height, width = digit.shape
    mass = digit.sum()
    rows, cols = np.arange(height), np.arange(width)
    centre_row = (digit.sum(axis=1) @ rows) / mass
    centre_col = (digit.sum(axis=0) @ cols) / mass
    top = int(np.clip(round(MNIST_CENTRE - centre_row), 0, IMAGE_SIZE - height))
    left = int(np.clip(round(MNIST_CENTRE - centre_col), 0, IMAGE_SIZE - width))
    field = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    field[top : top + height, left : left + width] = digit
    return field
