"""Training pictures: digits redrawn as a sketchpad draws them, and things that are not digits.

People draw with a round pen of one width, thin or thick, rotated and slanted, unlike
MNIST's writers. Every training picture, digit or not, is thinned once to its pen path
(`skeletonize`); each batch is then drawn again along those paths with a random pen and
moved about (`augment`), on the device, in one batched step.
"""

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


def skeletonize(x: torch.Tensor, scale: int = 2, chunk: int = 4096) -> torch.Tensor:
    """Each digit's pen path: its strokes thinned to one pixel (Zhang and Suen, 1984) at
    `scale` times the resolution, batched. (N, 1, H, W) floats in [0, 1], ink above 0.5 ->
    (N, 1, scale H, scale W) uint8 of 0 and 1."""
    return torch.cat([_thin(x[i : i + chunk], scale) for i in range(0, len(x), chunk)])


def _thin(x: torch.Tensor, scale: int) -> torch.Tensor:
    big = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    image = (big > 0.5).to(torch.uint8)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
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
            remove = (image == 1) & (count >= 2) & (count <= 6) & (rises == 1) & side
            if remove.any():
                image = image * ~remove
                changed = True
    return image


def redraw(skeleton: torch.Tensor, pen_steps: torch.Tensor) -> torch.Tensor:
    """Pen paths (N, 1, 56, 56) drawn again with a round pen (pen_steps + 0.5) px wide at
    28 x 28: each step grows the stroke by alternating square and cross dilations (an
    octagon, close to a round pen), then the result is averaged down (anti-aliased)."""
    big = skeleton.float()
    out = F.avg_pool2d(big, 2)
    for step in range(MAX_PEN_STEPS):
        big = _grow(big, square=step % 2 == 0)
        out = torch.where((pen_steps > step).view(-1, 1, 1, 1), F.avg_pool2d(big, 2), out)
    return out


def _grow(x: torch.Tensor, square: bool) -> torch.Tensor:
    """3x3 grey-level dilation, square or cross shaped (shifted maxima: max_pool2d is far
    slower on one-channel images on the CPU)."""
    padded = F.pad(x, (1, 1, 1, 1))
    rows = torch.maximum(
        torch.maximum(padded[..., :-2, :], padded[..., 1:-1, :]), padded[..., 2:, :]
    )
    if square:
        return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])
    cols = torch.maximum(torch.maximum(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])
    return torch.maximum(rows[..., 1:-1], cols[..., 1:-1, :])


def augment(x: torch.Tensor, skeleton: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A batch (N, 1, 28, 28) on the device, part of it redrawn with a random pen along its
    pen path (`skeleton`, from skeletonize), then all of it randomly rotated, sheared,
    scaled and shifted."""
    n, device = x.shape[0], x.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator, device=device) * (high - low) + low

    # A sketchpad brush is a round pen of one width, thin or thick, unlike MNIST's pens.
    pen_steps = torch.randint(0, MAX_PEN_STEPS + 1, (n,), generator=generator, device=device)
    redrawn = uniform(0, 1) < REDRAW_FRACTION
    x = x.clone()
    x[redrawn] = redraw(skeleton[redrawn], pen_steps[redrawn])
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
    # Preprocessing scales the strongest ink to 1, so a thin, blurred stroke must be too.
    return x / x.amax(dim=(2, 3), keepdim=True).clamp_min(1e-3)
