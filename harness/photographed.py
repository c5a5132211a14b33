"""Real MNIST test digits written on paper and photographed, the way people upload them.

Each digit is thinned to its pen path (harness/drawn.py) and written in ballpoint
(blue or black) or pencil (grey, grainy) on a sheet of paper, then photographed or scanned:

    even light     the sheet fills the picture, the light nearly even
    light falloff  darker towards the corners and to one side (a lamp, a vignetting lens)
    desk border    the desk visible around the sheet, 2.5-15% of the picture on each side
    hard shadow    the phone's hard-edged shadow across 15-45% of the sheet
    ruled paper    faint blue lines; squared paper: a faint grid
    blur           out of focus
    small ink      a small digit in a thin pen: under 0.5% of the picture is ink
    scan           a flatbed scan: white paper, even light, A4 at 150 or 300 dpi

Every photo has camera noise and a little light falloff, and is meant to be saved as JPEG
(`jpeg`). `photograph` returns the picture and the ink alone, as it was written (for the
share of the picture that is ink, and for reading the same digits off a clean canvas).
"""

import io
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from harness.drawn import paint, pixel_strokes

CONDITIONS = (
    "even light",
    "light falloff",
    "desk border",
    "hard shadow",
    "ruled paper",
    "squared paper",
    "blur",
    "small ink",
    "scan",
)
PHOTO_SIZES = ((1200, 900), (1512, 1512), (1600, 1200), (2016, 1512), (3000, 2250), (4000, 3000))
SCAN_SIZES = ((1240, 1754), (2480, 3508))  # A4 at 150 and 300 dpi
TWELVE_MP = (4000, 3000)
BALLPOINTS = ((0.12, 0.16, 0.55), (0.08, 0.08, 0.1), (0.1, 0.12, 0.35))  # blue, black, navy
PENCIL = (0.35, 0.35, 0.37)
DESKS = ((0.32, 0.2, 0.12), (0.18, 0.18, 0.2), (0.4, 0.3, 0.2), (0.1, 0.08, 0.07))
TEXT_HEIGHT = (0.15, 0.45)  # the digits' height, a share of the sheet's shorter side
SMALL_TEXT_HEIGHT = (0.1, 0.15)
PEN = (0.04, 0.08)  # pen width, a share of a digit's height: a ballpoint on a 2-8 cm digit
SMALL_PEN = (0.03, 0.045)
GAP = (0.25, 0.6)  # between the digits of a number, a share of a digit's height


class Photo(NamedTuple):
    picture: Image.Image  # RGB
    ink: np.ndarray  # H x W, 0-1: the pen's coverage of each pixel

    def coverage(self) -> float:
        """The share of the picture's pixels that are ink."""
        return float((self.ink > 0.5).mean())

    def clean(self) -> Image.Image:
        """The same ink on a clean white canvas."""
        return Image.fromarray((255 - 255 * self.ink).astype(np.uint8))


def photograph(
    digits: list[np.ndarray],
    condition: str,
    rng: np.random.Generator,
    size: tuple[int, int] | None = None,
) -> Photo:
    """The 28x28 uint8 MNIST digits written side by side on paper and photographed (or
    scanned) under `condition`, at a random size unless given."""
    scan = condition == "scan"
    sizes = SCAN_SIZES if scan else PHOTO_SIZES
    width, height = size or sizes[rng.integers(len(sizes))]
    if not scan and size is None and rng.random() < 0.5:
        width, height = height, width  # portrait
    sheet = _sheet_box(width, height, condition, rng)
    ink = _write(digits, width, height, sheet, condition, rng)
    paper = np.array([0.97, 0.97, 0.96]) if scan else rng.uniform(0.78, 0.92) * _tint(rng)
    pencil = rng.random() < 0.3 and condition != "small ink"
    colour = np.array(PENCIL if pencil else BALLPOINTS[rng.integers(len(BALLPOINTS))])
    strength = ink * np.float32(rng.uniform(0.5, 0.75) if pencil else rng.uniform(0.85, 1.0))
    if pencil:  # graphite is grainy
        strength *= 0.6 + 0.4 * rng.random(strength.shape, dtype=np.float32)
    light = _lines(width, height, condition, rng) * _light(width, height, condition, rng)
    if condition == "hard shadow":
        light *= _shadow(width, height, rng)
    on_sheet = _polygon_mask(width, height, sheet) if condition == "desk border" else None
    desk = np.float32(DESKS[rng.integers(len(DESKS))]) * 255
    grain = _grain(width, height, rng) * light if on_sheet is not None else None
    picture = np.empty((height, width, 3), np.uint8)
    for c in range(3):  # one channel at a time: a 12-megapixel photo in float is 144 MB
        channel = light * np.float32(255 * paper[c]) * (1 - strength * np.float32(1 - colour[c]))
        if on_sheet is not None:
            channel = np.where(on_sheet, channel, desk[c] * grain)
        picture[..., c] = np.clip(channel, 0, 255)
    blur = (0.4, 0.8) if condition != "blur" else (0.002, 0.004)
    radius = rng.uniform(*blur) * (1 if condition != "blur" else min(width, height))
    picture = np.asarray(Image.fromarray(picture).filter(ImageFilter.GaussianBlur(radius)))
    noise = np.float32(1.0 if scan else rng.uniform(1.5, 4.0))  # the sensor's, after the lens
    noisy = np.empty_like(picture)
    for c in range(3):
        speckle = noise * rng.standard_normal((height, width), dtype=np.float32)
        noisy[..., c] = np.clip(picture[..., c] + speckle, 0, 255)
    return Photo(Image.fromarray(noisy), ink)


def jpeg(image: Image.Image, rng: np.random.Generator) -> bytes:
    """The picture as a phone or scanner saves it: JPEG at quality 60-95."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(60, 96)))
    return buffer.getvalue()


def _sheet_box(width: int, height: int, condition: str, rng: np.random.Generator) -> np.ndarray:
    """The sheet's four corners (x, y): the whole picture and beyond, or, with a desk
    border, 2.5-15% in from each side and turned a little."""
    if condition != "desk border":
        left, top, right, bottom = -10, -10, -10, -10  # beyond the picture
    else:
        left, right = rng.uniform(0.025, 0.15, 2) * width
        top, bottom = rng.uniform(0.025, 0.15, 2) * height
    far_x, far_y = width - right, height - bottom
    corners = np.array([(left, top), (far_x, top), (far_x, far_y), (left, far_y)])
    if condition != "desk border":
        return corners
    turn = np.radians(rng.uniform(-1.5, 1.5))
    centre = corners.mean(axis=0)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    return (corners - centre) @ rotation.T + centre


def _write(
    digits: list[np.ndarray],
    width: int,
    height: int,
    sheet: np.ndarray,
    condition: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """The ink's coverage (H x W, 0-1): the digits' pen paths side by side, not touching,
    written with one pen, somewhere on the sheet."""
    small = condition == "small ink"
    left, top = np.clip(sheet.min(axis=0), 0, None)
    right, bottom = np.minimum(sheet.max(axis=0), (width, height))
    side = min(right - left, bottom - top)
    digit_height = rng.uniform(*(SMALL_TEXT_HEIGHT if small else TEXT_HEIGHT)) * side
    pen = max(1.5, rng.uniform(*(SMALL_PEN if small else PEN)) * digit_height)
    strokes, x = [], 0.0
    for digit in digits:
        paths = pixel_strokes(digit)
        points = np.concatenate(paths)
        corner, extent = points.min(axis=0), np.ptp(points, axis=0) + 1
        scale = (digit_height - pen) / extent[1] * rng.uniform(0.9, 1.1)
        strokes += [(p - corner) * scale + (x, 0) for p in paths]
        x += extent[0] * scale + pen + rng.uniform(*GAP) * digit_height
    points = np.concatenate(strokes)
    extent = points.max(axis=0)
    room = (right - left - 0.1 * side, bottom - top - 0.1 * side)
    shrink = min(1.0, room[0] / (extent[0] + pen), room[1] / (extent[1] + pen))
    strokes = [s * shrink for s in strokes]
    pen = max(1.5, pen * shrink)
    extent = extent * shrink
    margin = 0.05 * side + pen
    offset = (
        rng.uniform(left + margin, max(left + margin, right - margin - extent[0])),
        rng.uniform(top + margin, max(top + margin, bottom - margin - extent[1])),
    )
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    paint(canvas, [s + offset for s in strokes], pen, (255, 255, 255))
    return np.asarray(canvas.getchannel("A"), dtype=np.float32) / 255


def _tint(rng: np.random.Generator) -> np.ndarray:
    """Paper's colour under the light: white, a little warm or cool."""
    return np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.04, 0.02) * np.array([-0.5, 0.0, 1.0])


def _lines(width: int, height: int, condition: str, rng: np.random.Generator) -> np.ndarray:
    """The paper's own shade (H x W): 1, with faint printed lines on ruled or squared paper."""
    shade = Image.new("L", (width, height), 255)
    if condition in ("ruled paper", "squared paper"):
        pen = ImageDraw.Draw(shade)
        side = min(width, height)
        spacing = rng.uniform(0.03, 0.06) * side
        thickness = max(1, round(rng.uniform(0.001, 0.002) * side))
        darkness = int(255 * (1 - rng.uniform(0.15, 0.3)))
        slope = np.tan(np.radians(rng.uniform(-1, 1)))
        for y in np.arange(rng.uniform(0, spacing), height, spacing):
            pen.line([(0, y), (width, y + slope * width)], fill=darkness, width=thickness)
        if condition == "squared paper":
            for x in np.arange(rng.uniform(0, spacing), width, spacing):
                pen.line([(x, 0), (x - slope * height, height)], fill=darkness, width=thickness)
    return np.asarray(shade, dtype=np.float32) / 255


def _polygon_mask(width: int, height: int, corners: np.ndarray) -> np.ndarray:
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).polygon([tuple(c) for c in corners], fill=255)
    return np.asarray(mask) > 127


def _grain(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A desk's wood grain: streaks along one direction, 0.8-1.2."""
    coarse = rng.uniform(0.8, 1.2, (64, 8)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, "F").resize((width, height), Image.BICUBIC))


def _light(width: int, height: int, condition: str, rng: np.random.Generator) -> np.ndarray:
    """The light on the page (H x W): brightest near one point, falling off to the corners
    and to one side: a little in every photo, strongly with "light falloff"."""
    if condition == "scan":
        return np.full((height, width), 1.04, np.float32)  # a scanner's white clips
    strong = condition == "light falloff"
    y, x = np.mgrid[0:1:48j, 0:1:64j]
    cx, cy = rng.uniform(0.2, 0.8, 2)
    radial = (x - cx) ** 2 + (y - cy) ** 2
    slope = rng.normal(size=2)
    side = (x - 0.5) * slope[0] + (y - 0.5) * slope[1]
    fall = rng.uniform(0.3, 0.6) if strong else rng.uniform(0.0, 0.15)
    light = 1.05 - fall * radial / radial.max() - (fall / 3) * side / max(np.abs(side).max(), 1e-6)
    field = Image.fromarray(light.astype(np.float32), "F").resize((width, height), Image.BILINEAR)
    return np.array(field)


def _shadow(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A hard-edged shadow (H x W: 0.45-0.7 in it, 1 outside) over 15-45% of the picture,
    from one side, its edge straight or slightly turned, blurred a few pixels."""
    share = rng.uniform(0.15, 0.45)
    mask = Image.new("L", (width, height), 0)
    pen = ImageDraw.Draw(mask)
    lean = rng.uniform(-0.1, 0.1)
    side = rng.integers(4)
    if side in (0, 1):  # from the left or the right
        a, b = share * width * (1 + lean), share * width * (1 - lean)
        polygon = [(0, 0), (a, 0), (b, height), (0, height)]
        if side == 1:
            polygon = [(width - px, py) for px, py in polygon]
    else:  # from the top or the bottom
        a, b = share * height * (1 + lean), share * height * (1 - lean)
        polygon = [(0, 0), (0, a), (width, b), (width, 0)]
        if side == 3:
            polygon = [(px, height - py) for px, py in polygon]
    pen.polygon(polygon, fill=255)
    edge = rng.uniform(0.002, 0.01) * min(width, height)
    mask = mask.filter(ImageFilter.GaussianBlur(edge))
    depth = rng.uniform(0.3, 0.55)
    return 1 - np.float32(depth / 255) * np.asarray(mask, dtype=np.float32)
