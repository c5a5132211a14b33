"""Data augmentation along the pen's path: every training picture redrawn as a sketchpad draws
it, with a random round pen, sometimes lifted, then moved about.

People draw with a round pen of one width, thin or thick, rotated and slanted, unlike
MNIST's writers. Every training picture, digit or not, is thinned once to its pen path
(`skeletonize`, `pen_paths`); each batch is then drawn again along those paths with a random
pen (`redraw`), some with a pen lift (`lift_pen`), and moved about (`augment`), on the
device, in one batched step.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from model import DIGIT_BOX, IMAGE_SIZE

# Augmentation ranges: drawn digits are rotated, slanted, off-size and drawn with any pen.
MAX_ROTATION_DEG = 12.0
SCALE_RANGE = (0.85, 1.15)
MAX_SHEAR = 0.25
MAX_SHIFT_PX = 2.0
REDRAW_FRACTION = 0.5  # of each batch, redrawn along its pen path with a random round pen
MAX_PEN_STEPS = 6  # pens from 0.5 to 6.5 px wide at 28 x 28: a fine liner to a thick brush
MNIST_STROKE_PX = 2.5  # MNIST's typical stroke width
PEN_LIFT_FRACTION = 0.2  # of the pictures redrawn with a pen of up to MAX_LIFT_PEN steps
MAX_LIFT_PEN = 4  # (3.5 px: a sketchpad brush is 1.5 to 3 px at this size), with a pen lift...
LIFT_GAP = (0.2, 1.0)  # ...that leaves this many pen widths of blank between the stroke ends
BLUR_FRACTION = 0.1  # of each batch, seen at low resolution: a small photo, an icon, a scan...
LOW_RES_SIDES = (8, 14)  # ...shrunk to 8 to 13 pixels a side, then enlarged back to 28
PATH_CHUNK = 1024  # pictures at a time: 3 MB of pen paths stay in cache, twice as fast as 4096
THINNING_THREADS = 2  # scikit-image thins without the GIL: 1.5x as fast on 2 cores


def skeletonize(x: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """Each picture's pen path: its strokes thinned to one pixel at `scale` times the
    resolution, by scikit-image's skeletonize (Zhang and Suen's thinning, 1984), one
    picture at a time on the CPU, in THINNING_THREADS threads. (N, 1, H, W) floats in
    [0, 1], ink above 0.5 -> (N, 1, scale H, scale W) uint8 of 0 and 1, on x's device."""
    from skimage import morphology  # here: a run with its pen paths cached skips the 0.25 s

    big = F.interpolate(x.float(), scale_factor=scale, mode="bilinear", align_corners=False)
    ink = (big > 0.5).squeeze(1).cpu().numpy()
    thin = np.zeros(ink.shape, dtype=np.uint8)

    def thin_part(part: range) -> None:
        for k in part:
            thin[k] = morphology.skeletonize(ink[k])

    parts = [range(k, len(ink), THINNING_THREADS) for k in range(THINNING_THREADS)]
    with ThreadPoolExecutor(THINNING_THREADS) as threads:
        list(threads.map(thin_part, parts))
    return torch.from_numpy(thin).unsqueeze(1).to(x.device)


def pen_paths(x: torch.Tensor) -> torch.Tensor:
    """Each picture's pen path (`skeletonize`), stored as how many pen steps reach each
    pixel of it: 0 on the path, MAX_PEN_STEPS + 1 beyond the widest pen. Computed once, it
    makes every redraw a comparison. (N, 1, H, W) in [0, 1] -> (N, 1, 2H, 2W) uint8."""
    paths = [_reach(skeletonize(x[i : i + PATH_CHUNK])) for i in range(0, len(x), PATH_CHUNK)]
    return torch.cat(paths)


def _reach(skeleton: torch.Tensor) -> torch.Tensor:
    # A pixel first covered after k growth steps stays covered in the MAX_PEN_STEPS + 1 - k
    # pens from then on, so counting the pens that miss it gives k.
    covered = skeleton
    missed = 1 - covered
    for step in range(MAX_PEN_STEPS):
        covered = _grow(covered, square=step % 2 == 0)
        missed += 1 - covered
    return missed


def redraw(paths: torch.Tensor, pen_steps: torch.Tensor) -> torch.Tensor:
    """Pen paths (from pen_paths) drawn again with a round pen (pen_steps + 0.5) px wide at
    28 x 28: each step grows the stroke by alternating square and cross dilations (an
    octagon, close to a round pen), then the result is averaged down (anti-aliased)."""
    return F.avg_pool2d((paths <= pen_steps.view(-1, 1, 1, 1)).float(), 2)


def _grow(x: torch.Tensor, square: bool) -> torch.Tensor:
    """3x3 dilation, square or cross shaped (shifted maxima: max_pool2d is far slower on
    one-channel images on the CPU)."""
    padded = F.pad(x, (1, 1, 1, 1))
    rows = torch.maximum(
        torch.maximum(padded[..., :-2, :], padded[..., 1:-1, :]), padded[..., 2:, :]
    )
    if square:
        return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])
    cols = torch.maximum(torch.maximum(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])
    return torch.maximum(rows[..., 1:-1], cols[..., 1:-1, :])


def lift_pen(x: torch.Tensor, pens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The drawings (N, 1, 28, 28) with a stretch of stroke left out, as when the pen is
    lifted and put down again a little further on: the ink within a disk around a random ink
    pixel is erased, leaving a blank of LIFT_GAP pen widths (`pens`, (N,) px) between the
    stroke ends. (Random Erasing, Zhong et al., 2017, along the pen's way.)"""
    n, device = len(x), x.device
    if n == 0:
        return x
    ink = (x > 0.5).flatten(1).float() + 1e-6  # a pixel of a stroke, chosen at random
    where = torch.multinomial(ink, 1, generator=generator).squeeze(1)
    gap = torch.rand(n, generator=generator, device=device) * (LIFT_GAP[1] - LIFT_GAP[0])
    radius = (1 + LIFT_GAP[0] + gap) * pens / 2
    rows = torch.arange(IMAGE_SIZE, device=device).view(1, -1, 1)
    cols = torch.arange(IMAGE_SIZE, device=device).view(1, 1, -1)
    far = (rows - (where // IMAGE_SIZE).view(-1, 1, 1)) ** 2 + (
        cols - (where % IMAGE_SIZE).view(-1, 1, 1)
    ) ** 2 > radius.view(-1, 1, 1) ** 2
    return x * far.unsqueeze(1)


def augment(
    x: torch.Tensor,
    paths: torch.Tensor,
    generator: torch.Generator,
    max_pen_steps: int = MAX_PEN_STEPS,
    redraw_fraction: float = REDRAW_FRACTION,
) -> torch.Tensor:
    """A batch (N, 1, 28, 28) on the device, `redraw_fraction` of it redrawn with a random
    pen (up to `max_pen_steps`) along its pen path (`paths`, from pen_paths; None when
    nothing is redrawn; PEN_LIFT_FRACTION of those with a pen lift), then all of it randomly
    rotated, sheared, scaled and shifted, and some of it blurred as a low-resolution picture
    is."""
    n, device = x.shape[0], x.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator, device=device) * (high - low) + low

    # A sketchpad brush is a round pen of one width, thin or thick, unlike MNIST's pens.
    pen_steps = torch.randint(0, max_pen_steps + 1, (n,), generator=generator, device=device)
    redrawn = uniform(0, 1) < redraw_fraction
    x = x.clone()
    if redraw_fraction > 0:
        x[redrawn] = redraw(paths[redrawn], pen_steps[redrawn])
        lifted = redrawn & (pen_steps < MAX_LIFT_PEN) & (uniform(0, 1) < PEN_LIFT_FRACTION)
        x[lifted] = lift_pen(x[lifted], pen_steps[lifted] + 0.5, generator)
    # A thicker pen also makes a bigger digit, which preprocessing scales back to 20 px: the
    # affine step shrinks it by as much.
    growth = torch.where(redrawn, pen_steps + 0.5 - MNIST_STROKE_PX, 0.0)
    pen_shrink = DIGIT_BOX / (DIGIT_BOX + growth)

    angle = torch.deg2rad(uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    shear = uniform(-MAX_SHEAR, MAX_SHEAR)
    scale = uniform(*SCALE_RANGE) * pen_shrink
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    shift = MAX_SHIFT_PX * 2 / IMAGE_SIZE
    theta = torch.stack(
        [
            torch.stack([cos, -sin + shear * cos, uniform(-shift, shift)], dim=1),
            torch.stack([sin, cos + shear * sin, uniform(-shift, shift)], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, align_corners=False)
    blurred = uniform(0, 1) < BLUR_FRACTION
    side = int(torch.randint(*LOW_RES_SIDES, (1,), generator=generator, device=device))
    small = F.interpolate(x[blurred], size=side, mode="area")
    x[blurred] = F.interpolate(small, size=IMAGE_SIZE, mode="bilinear", align_corners=False)
    # Preprocessing scales the strongest ink to 1, so a thin, blurred stroke must be too.
    return x / x.amax(dim=(2, 3), keepdim=True).clamp_min(1e-3)
