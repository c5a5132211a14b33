"""Why the model reads what it reads: saliency, feature maps and top classes for one input.

`explain(model, x)` computes, for one model input x of shape (1, 1, 28, 28):
- which ink pushed the model towards its answer and which pushed it away (integrated
  gradients of the predicted class's logit, from a black image);
- what each of the 32 first-layer and 64 second-layer filters responded to;
- the probability of each class.
`saliency_image` and `feature_grid` turn these into pictures for the page and the API:
numpy and matplotlib's colour maps, no figures, a few milliseconds each.
"""

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib import colormaps
from torch import nn

IG_STEPS = 128  # points on the path from black to the drawing, in one batched pass: the
# attributions then add up to the logit change within 4%, 0.5% on average (256 steps: 0.2%
# at 2.5x the time; 64 left 5% on unsure digits)
SALIENCY_COLOURS = colormaps["bwr"]  # diverging: blue (away), white (neither), red (towards)
SALIENCY_PEAK = 99  # percentile of |attribution| that gets full colour: one hot pixel can't wash
SALIENCY_ZOOM = 10  # screen pixels per model pixel: 280 px, the canvas's own size
INK_SHADE = 0.3  # full ink darkens the colour by 30%: the digit shows, the colours still read
ACTIVATION_COLOURS = colormaps["inferno"]  # black: no response; bright yellow: strongest
GRID_COLUMNS = 8  # conv1: 8 x 4 tiles, conv2: 8 x 8
TILE_SIDE = 72  # screen pixels per feature map: conv1 maps (24 px) x3, conv2 maps (8 px) x9
GAP = 2  # screen pixels between tiles
GAP_COLOUR = (255, 255, 255)  # never produced by inferno, so the tiles stay countable


@dataclass(frozen=True)
class Explanation:
    probabilities: torch.Tensor  # (10,) softmax of the logits
    predicted: int  # the class explained: the most probable
    attributions: torch.Tensor  # (28, 28) each pixel's share of logit_change; + towards
    logit_change: float  # predicted logit of x minus that of the black image
    conv1: torch.Tensor  # (32, 24, 24) first-layer responses, after ReLU, before pooling
    conv2: torch.Tensor  # (64, 8, 8) second-layer responses, after ReLU, before pooling


def explain(model: nn.Module, x: torch.Tensor, steps: int = IG_STEPS) -> Explanation:
    """Saliency, feature maps and probabilities for one input x (1, 1, 28, 28) in [0, 1],
    from a model in eval mode (as load_model returns it: no dropout). For an Ensemble the
    feature maps are its first member's, and the saliency is of the ensemble's score (the
    log of the members' mean probability), which is what the page shows.

    Saliency is integrated gradients (Sundararajan et al., 2017), not the raw gradient.
    The gradient at the drawing alone saturates (once a class is certain, its logit barely
    moves with any one pixel, so the strokes that decided it look unimportant) and is noisy
    pixel to pixel. Integrated gradients average the gradient along the straight path from
    a baseline to the drawing and multiply by the change in each pixel, which makes the map
    *complete*: the attributions sum to logit(x) - logit(baseline), so each pixel's number
    is its share of the answer; and *sensitive*: a pixel that changes the answer gets credit.
    The baseline is the black 28x28, MNIST's "no ink", so the attributions say what each
    bit of ink did; pixels without ink get none (what is missing is not shown).

    One forward and one backward pass: the drawing, the baseline and the `steps` midpoints
    of the path go through the model as one batch. The feature maps are after ReLU and
    before pooling, at full resolution: ReLU and max-pooling commute, so these are exactly
    what the model pools, and 24x24 (8x8) maps show their strokes better than pooled 12x12
    (4x4) ones.
    """
    baseline = torch.zeros_like(x)
    alphas = (torch.arange(steps, dtype=x.dtype) + 0.5).view(-1, 1, 1, 1) / steps
    path = (baseline + alphas * (x - baseline)).requires_grad_()
    with torch.enable_grad():
        conv1, conv2, logits = model.stages(torch.cat([x, baseline, path]))
        predicted = int(logits[0].argmax())
        (gradients,) = torch.autograd.grad(logits[2:, predicted].sum(), path)
    attributions = (x - baseline)[0, 0] * gradients.mean(dim=0)[0]
    logits = logits.detach()
    return Explanation(
        probabilities=torch.softmax(logits[0], dim=0),
        predicted=predicted,
        attributions=attributions,
        logit_change=float(logits[0, predicted] - logits[1, predicted]),
        conv1=torch.relu(conv1[0].detach()),
        conv2=torch.relu(conv2[0].detach()),
    )


def saliency_image(x: torch.Tensor, attributions: torch.Tensor) -> np.ndarray:
    """The attributions on a symmetric diverging scale, SALIENCY_ZOOM times enlarged.

    Red: ink that pushed the model towards its answer; blue: away; white: neither. The ink
    is shaded a little grey so the digit's shape shows where its pixels did little.
    """
    a = attributions.numpy()
    peak = np.percentile(np.abs(a), SALIENCY_PEAK)
    a = np.clip(a / peak, -1, 1) if peak > 0 else np.zeros_like(a)
    colour = SALIENCY_COLOURS(0.5 + 0.5 * a)[..., :3]
    shade = 1 - INK_SHADE * x.reshape(a.shape).numpy()[..., None]
    return _enlarge(np.round(255 * colour * shade).astype(np.uint8), SALIENCY_ZOOM)


def feature_grid(maps: torch.Tensor, columns: int = GRID_COLUMNS) -> np.ndarray:
    """(C, H, W) responses as a grid of C tiles, `columns` wide, each map scaled to its own
    peak (dead maps stay black), in ACTIVATION_COLOURS, with GAP-pixel white lines between."""
    count, side, _ = maps.shape
    rows = -(-count // columns)
    peaks = maps.amax(dim=(1, 2), keepdim=True)
    scaled = torch.where(peaks > 0, maps / peaks.clamp_min(1e-12), 0).numpy()
    tiles = _enlarge(ACTIVATION_COLOURS(scaled, bytes=True)[..., :3], TILE_SIDE // side)
    step = tiles.shape[1] + GAP
    grid = np.empty((rows * step - GAP, columns * step - GAP, 3), np.uint8)
    grid[:] = GAP_COLOUR
    for i, tile in enumerate(tiles):
        top, left = (i // columns) * step, (i % columns) * step
        grid[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return grid


def _enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Each pixel of the (..., H, W, 3) image as a factor x factor block: crisp, not blurred."""
    return image.repeat(factor, axis=-3).repeat(factor, axis=-2)
