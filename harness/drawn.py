"""Real MNIST digits redrawn the way visitors draw on the sketchpad.

Tests and benchmarks (benchmarks/accuracy.py among them) need drawings whose true label
is known. Each MNIST digit is thinned to its pen path and drawn again with a round brush:
on a canvas of random size, at a random size and place, with a thin to very thick pen,
in black or a colour, on white or on a transparent background (what a canvas exports).
`number_canvas` sets a few of them side by side on the app's canvas, as a number.
"""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

CANVAS_SIDES = (300, 800)  # each side of the canvas, pixels
DIGIT_FRACTIONS = (0.20, 0.85)  # the drawing's longer side, as a fraction of the canvas's shorter
PEN_FRACTIONS = (0.03, 0.30)  # pen width as a fraction of the drawing's size: thin to very thick
INKS = ((0, 0, 0), (0, 0, 0), (0, 0, 0), (20, 40, 160), (200, 20, 20), (0, 120, 0), (120, 0, 140))
PATH_SCALE = 4  # the digit is thinned at 112x112, which keeps its strokes' shape
APP_CANVAS = (560, 280)  # width, height (app.CANVAS_SIZE): what the sketchpad exports
APP_PEN = 18  # pixels (2 x app.BRUSH_RADIUS): the sketchpad's stroke width
BOX_SLACK = 3  # pixels a read box may be off number_canvas's: read at half size, faint edge dropped


def drawings(images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0):
    """`count` (drawing, label, pen fraction) from the MNIST images, chosen at random."""
    rng = np.random.default_rng(seed)
    for index in rng.choice(len(images), size=count, replace=False):
        pen = float(rng.uniform(*PEN_FRACTIONS))
        yield draw(np.asarray(images[index]), rng, pen), int(labels[index]), pen


def draw(
    digit: np.ndarray,
    rng: np.random.Generator,
    pen_fraction: float,
    canvas_size: tuple[int, int] | None = None,
) -> Image.Image:
    """One 28x28 uint8 MNIST digit redrawn on a canvas (of random size unless given), as
    RGB (white background) or RGBA (transparent)."""
    return draw_strokes(pixel_strokes(digit), rng, pen_fraction, canvas_size, span_extra=1)


def draw_strokes(
    strokes: list[np.ndarray],
    rng: np.random.Generator,
    pen_fraction: float,
    canvas_size: tuple[int, int] | None = None,
    span_extra: float = 0,
    size_fractions: tuple[float, float] = DIGIT_FRACTIONS,
) -> Image.Image:
    """Pen strokes (each an (n, 2) array of x, y points, y down, any units) drawn with one
    round pen at a random size and place on a canvas (of random size unless given), in a
    random ink, on white (RGB) or transparent (RGBA). The drawing's longer side is a random
    fraction (`size_fractions`) of the canvas's shorter side; `span_extra` is added to the
    strokes' extent (1 for pixel paths, whose pixels have a width)."""
    points = np.concatenate(strokes)
    width, height = canvas_size or rng.integers(*CANVAS_SIDES, size=2, endpoint=True).tolist()
    size = rng.uniform(*size_fractions) * min(width, height)
    pen = max(1.5, pen_fraction * size)
    scale = (size - pen) / (np.ptp(points, axis=0).max() + span_extra)
    corner = points.min(axis=0)
    placed = [(stroke - corner) * scale for stroke in strokes]
    far = np.concatenate(placed).max(axis=0)
    offset = (
        rng.uniform(pen / 2, width - pen / 2 - far[0]),
        rng.uniform(pen / 2, height - pen / 2 - far[1]),
    )
    ink = INKS[rng.integers(len(INKS))]
    canvas, transparent = new_canvas(width, height, rng)
    paint(canvas, [stroke + offset for stroke in placed], pen, ink)
    return canvas if transparent else canvas.convert("RGB")


def new_canvas(width: int, height: int, rng: np.random.Generator) -> tuple[Image.Image, bool]:
    """An empty RGBA canvas, transparent or white at random, and whether it is transparent
    (a white one is returned as RGB once drawn on, as an uploaded picture would be)."""
    transparent = bool(rng.random() < 0.5)
    return Image.new("RGBA", (width, height), (0, 0, 0, 0) if transparent else "white"), transparent


def paint(canvas: Image.Image, strokes: list[np.ndarray], pen: float, ink: tuple) -> None:
    """Strokes (canvas pixels) drawn with a round pen `pen` pixels wide: a disc at every
    point, joined by lines of the pen's width."""
    pen_draw = ImageDraw.Draw(canvas)
    for stroke in strokes:
        points = [(float(x), float(y)) for x, y in stroke]
        for point in points:
            pen_draw.ellipse(_disc(point, pen), fill=ink + (255,))
        if len(points) > 1:
            pen_draw.line(points, fill=ink + (255,), width=round(pen))


def pixel_strokes(digit: np.ndarray) -> list[np.ndarray]:
    """The digit's pen path as strokes (x, y) in path pixels: every pixel, and a segment
    joining each pair of neighbouring pixels."""
    rows, cols = np.nonzero(pen_path(digit))
    pixels = {(r, c) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)}
    strokes = [np.array([(c, r)], dtype=float) for r, c in zip(rows, cols, strict=True)]
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each neighbour pair once
            if (r + dr, c + dc) in pixels:
                strokes.append(np.array([(c, r), (c + dc, r + dr)], dtype=float))
    return strokes


def skeletonize(x: torch.Tensor, scale: int = 2, chunk: int = 4096) -> torch.Tensor:
    """Each digit's pen path: its strokes thinned to one pixel (Zhang and Suen, 1984) at
    `scale` times the resolution, batched. (N, 1, H, W) floats in [0, 1], ink above 0.5 ->
    (N, 1, scale H, scale W) uint8 of 0 and 1.

    The held-out drawings' own thinning, in torch: training thins with scikit-image
    (augment.skeletonize), and the drawings that measure it stay what they were."""
    return torch.cat([_thin(x[i : i + chunk], scale) for i in range(0, len(x), chunk)])


def _thin(x: torch.Tensor, scale: int) -> torch.Tensor:
    big = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    image = (big > 0.5).to(torch.uint8)
    # Most pictures are thin after 2 or 3 passes, a few bold ones take 15: keep thinning only
    # those that still changed (each picture is thinned on its own, so the result is the same).
    active = torch.arange(len(image), device=image.device)
    while len(active):
        part = image[active]
        changed = torch.zeros(len(active), dtype=torch.bool, device=image.device)
        for step in (0, 1):
            remove = _removable(part, step)
            part = part * ~remove
            changed |= remove.flatten(1).any(1)
        image[active] = part
        active = active[changed]
    return image


def _removable(image: torch.Tensor, step: int) -> torch.Tensor:
    """The pixels that one sub-iteration of Zhang and Suen's thinning removes."""
    p = F.pad(image, (1, 1, 1, 1))
    # The 8 neighbours clockwise from north: P2 ... P9 in Zhang and Suen's paper.
    n = [p[..., :-2, 1:-1], p[..., :-2, 2:], p[..., 1:-1, 2:], p[..., 2:, 2:]]
    n += [p[..., 2:, 1:-1], p[..., 2:, :-2], p[..., 1:-1, :-2], p[..., :-2, :-2]]
    count = sum(n)
    rises = sum((n[i] < n[(i + 1) % 8]).to(torch.uint8) for i in range(8))
    north, east, south, west = n[0], n[2], n[4], n[6]
    if step == 0:
        side = (north * east * south == 0) & (east * south * west == 0)
    else:
        side = (north * east * west == 0) & (north * south * west == 0)
    return (image == 1) & (count >= 2) & (count <= 6) & (rises == 1) & side


def pen_path(digit: np.ndarray) -> np.ndarray:
    """The digit's strokes thinned to one pixel wide, at PATH_SCALE times its size."""
    ink = torch.from_numpy(digit / max(int(digit.max()), 1)).float().view(1, 1, *digit.shape)
    return skeletonize(ink, scale=PATH_SCALE)[0, 0].numpy().astype(bool)


def _disc(centre: tuple[float, float], diameter: float) -> tuple[float, float, float, float]:
    x, y = centre
    r = diameter / 2
    return (x - r, y - r, x + r, y + r)


def pen_strokes(digit: np.ndarray) -> list[np.ndarray]:
    """The digit's pen path as a hand would draw it with a mouse: a few polylines (x, y in
    path pixels), each a walk along the thinned strokes from an end. Pieces that a longer
    stroke already covers (the little corners a thinned staircase leaves) are dropped."""
    path = pen_path(digit)
    pixels = set(zip(*(a.tolist() for a in np.nonzero(path)), strict=True))

    def neighbours(p: tuple[int, int]) -> list[tuple[int, int]]:
        steps = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
        return [(p[0] + dr, p[1] + dc) for dr, dc in steps if (p[0] + dr, p[1] + dc) in pixels]

    unwalked = {frozenset((p, q)) for p in pixels for q in neighbours(p)}
    walks = []
    for start in sorted(pixels, key=lambda p: (len(neighbours(p)) != 1, p)):  # ends first
        while True:
            here, walk = start, [start]
            while ahead := [q for q in neighbours(here) if frozenset((here, q)) in unwalked]:
                # Straight on where it can: the nearest next pixel, side before diagonal.
                step = min(ahead, key=lambda q: abs(q[0] - here[0]) + abs(q[1] - here[1]))
                unwalked.discard(frozenset((here, step)))
                walk.append(step)
                here = step
            if len(walk) > 1 or not neighbours(start):
                walks.append(walk)
            if len(walk) == 1:
                break
    walks.sort(key=len, reverse=True)
    near, strokes = set(), []  # the pixels drawn so far, and those next to them
    for walk in walks:
        if not near.issuperset(walk):
            strokes.append(np.array([(c, r) for r, c in walk], dtype=float))
            near.update((r + dr, c + dc) for r, c in walk for dr in (-1, 0, 1) for dc in (-1, 0, 1))
    return strokes


def number_canvas(
    digits: list[np.ndarray],
    rng: np.random.Generator,
    size: tuple[int, int] = APP_CANVAS,
    height_fraction: float = 0.6,
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """MNIST digits redrawn with a round pen, side by side (one to a slot, not touching), in
    black on a transparent canvas as the sketchpad exports it; and each digit's ink box."""
    width, height = size
    slot = width // len(digits)
    margin = slot // 10  # digits at most 0.8 of a slot wide: at least 2 margins apart
    alpha = np.zeros((height, width), np.uint8)
    boxes = []
    for k, digit in enumerate(digits):
        drawing = draw(digit, rng, pen_fraction=0.12, canvas_size=(300, 300)).convert("RGBA")
        ink = Image.fromarray(255 - np.asarray(_on_white(drawing)).min(axis=2))
        ink = ink.crop(ink.getbbox())
        scale = min(height_fraction * height / ink.height, 0.8 * slot / ink.width)
        ink = ink.resize((max(1, round(ink.width * scale)), max(1, round(ink.height * scale))))
        left = k * slot + margin + int(rng.integers(0, slot - 2 * margin - ink.width + 1))
        top = int(rng.integers(0, height - ink.height + 1))
        alpha[top : top + ink.height, left : left + ink.width] = np.asarray(ink)
        boxes.append((left, top, left + ink.width, top + ink.height))
    return _black_ink(alpha), boxes


def _on_white(drawing: Image.Image) -> Image.Image:
    white = Image.new("RGBA", drawing.size, "white")
    white.alpha_composite(drawing)
    return white.convert("RGB")


def _black_ink(alpha: np.ndarray) -> np.ndarray:
    canvas = np.zeros(alpha.shape + (4,), np.uint8)
    canvas[..., 3] = alpha
    return canvas
