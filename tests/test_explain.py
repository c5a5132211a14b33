"""Inside the model: what the saliency and feature-map pictures mean, on real MNIST digits
and the committed model, in-process and through a real server."""

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image
from scipy import ndimage

import app
import explain
from harness.drawn import draw
from harness.server import serve

DIGITS = 40  # the first MNIST test digits
INK = 0.1  # a pixel this bright is ink
NEAR_INK = 1  # pixels: "around the ink" is the ink grown by one pixel each way
SURE = 0.5  # top probability of an answer the model is sure of
# Share of a digit's ink pixels blacked out in the occlusion test. A tenth: trained to doubt
# broken strokes, the model is already unsure without any random fifth of a digit's ink.
OCCLUDED = 0.1


def model_input(image: torch.Tensor) -> torch.Tensor:
    return (image.float() / 255).view(1, 1, 28, 28)


@pytest.fixture(scope="module")
def explained(model, mnist_test):
    """(input, label, Explanation) for the first DIGITS test digits."""
    images, labels = mnist_test
    return [
        (x, int(labels[i]), explain.explain(model, x))
        for i in range(DIGITS)
        for x in [model_input(images[i])]
    ]


def test_it_explains_the_models_answer(model, explained):
    for x, label, seen in explained:
        with torch.no_grad():
            logits = model(x)[0]
        assert seen.predicted == int(logits.argmax()) == label
        assert torch.allclose(seen.probabilities, logits.softmax(0), atol=1e-6)


def test_attributions_add_up_to_the_logit_change_from_a_black_image(model, explained):
    """Completeness: integrated gradients share out exactly what the ink changed."""
    for x, _, seen in explained:
        with torch.no_grad():
            change = model(x)[0, seen.predicted] - model(torch.zeros_like(x))[0, seen.predicted]
        assert seen.logit_change == pytest.approx(float(change), rel=1e-5)
        # Within 4% (IG_STEPS points approximate the path integral), or a tenth of a logit
        # where the ink barely moved it: the black image already looks most like a 1.
        assert float(seen.attributions.sum()) == pytest.approx(seen.logit_change, rel=0.04, abs=0.1)
    # What is left is the approximation's: the worst digit's sum comes within a hundredth
    # of a logit with 16 times the points.
    x, _, seen = max(explained, key=lambda e: abs(e[2].attributions.sum() - e[2].logit_change))
    finer = explain.explain(model, x, steps=16 * explain.IG_STEPS)
    assert float(finer.attributions.sum()) == pytest.approx(finer.logit_change, abs=0.01)


def test_saliency_lies_on_and_around_the_ink(reader, explained):
    """At least 80% of the attribution, and most of its positive part, is on the digit's
    ink (grown by a pixel); the positive part outweighs the negative for a sure answer (at
    least even odds). (An unsure one can fall below the black image's logit: the blank,
    which the app never reads, looks most like a 1 to the model; MNIST test digit 14, a thin
    1, is read at 0.29, just above the shipped min_confidence of 0.28, and is one.)"""
    for x, _, seen in explained:
        near_ink = ndimage.binary_dilation(x[0, 0].numpy() >= INK, iterations=NEAR_INK)
        a = seen.attributions.numpy()
        assert np.abs(a)[near_ink].sum() >= 0.8 * np.abs(a).sum()
        assert a.clip(min=0)[near_ink].sum() >= 0.8 * a.clip(min=0).sum()
        if seen.probabilities.max() >= max(reader.min_confidence, SURE):
            assert a.clip(min=0).sum() > -a.clip(max=0).sum()


def test_blacking_out_the_most_salient_ink_hurts_more_than_random_ink(model, explained):
    """The map ranks the pixels that matter: removing the top-attributed tenth of the ink
    lowers the answer's probability more than removing a random tenth of it."""
    rng = np.random.default_rng(0)
    salient_drops, random_drops = [], []
    for x, _, seen in explained:
        ink = np.flatnonzero(x.flatten().numpy() >= INK)
        k = round(OCCLUDED * ink.size)
        ranked = ink[np.argsort(-seen.attributions.flatten().numpy()[ink])]
        for drops, pixels in [
            (salient_drops, ranked[:k]),
            (random_drops, rng.permutation(ink)[:k]),
        ]:
            occluded = x.flatten().clone()
            occluded[pixels] = 0
            with torch.no_grad():
                p = model(occluded.view_as(x)).softmax(1)[0, seen.predicted]
            drops.append(float(seen.probabilities[seen.predicted] - p))
    salient_drops, random_drops = np.array(salient_drops), np.array(random_drops)
    # The reader trained with pen lifts (a stretch of stroke erased) reads a digit with
    # missing ink better than it did, so the salient tenth costs it less (0.34 on average
    # here; 0.4 and more before): the comparisons with random ink below are the test.
    assert salient_drops.mean() > 0.25
    assert salient_drops.mean() > 3 * random_drops.mean()
    assert (salient_drops >= random_drops).mean() >= 0.9


def test_saliency_picture_is_red_where_ink_pushed_towards_and_blue_where_away(explained):
    zoom = explain.SALIENCY_ZOOM
    for x, _, seen in explained[:10]:
        picture = explain.saliency_image(x, seen.attributions).astype(int)
        assert picture.shape == (28 * zoom, 28 * zoom, 3)
        a = seen.attributions.numpy()
        peak = np.percentile(np.abs(a), explain.SALIENCY_PEAK)
        for row, col in [
            np.unravel_index(a.argmax(), a.shape),
            np.unravel_index(a.argmin(), a.shape),
        ]:
            block = picture[row * zoom : (row + 1) * zoom, col * zoom : (col + 1) * zoom]
            assert (block == block[0, 0]).all()  # crisp: one colour per model pixel
            red, _, blue = block[0, 0]
            # Full colour from the peak up, paler below it (a digit pushed away by little).
            margin = 150 * min(1.0, abs(a[row, col]) / peak)
            assert (red - blue > margin) if a[row, col] > 0 else (blue - red > margin)
        blank = picture[: zoom * 2, : zoom * 2]  # a corner, no ink, no attribution: white
        assert (blank >= 250).all()


def tiles(grid: np.ndarray) -> list[np.ndarray]:
    """The tiles of a feature grid, found by its white gap lines."""
    gap = (grid == explain.GAP_COLOUR).all(axis=2)
    rows, cols = np.flatnonzero(~gap.all(axis=1)), np.flatnonzero(~gap.all(axis=0))

    def runs(index):
        breaks = np.flatnonzero(np.diff(index) > 1)
        return list(zip(index[np.r_[0, breaks + 1]], index[np.r_[breaks, -1]] + 1, strict=True))

    return [grid[r0:r1, c0:c1] for r0, r1 in runs(rows) for c0, c1 in runs(cols)]


def test_feature_grids_show_each_map_in_its_own_tile(explained):
    """32 conv1 tiles (8 x 4) and 64 conv2 tiles (8 x 8), each the map it stands for:
    brightest where the filter responded most, black where it did not respond."""
    x, _, seen = explained[0]
    assert seen.conv1.shape == (32, 24, 24) and seen.conv2.shape == (64, 8, 8)
    assert seen.conv1.min() >= 0 and seen.conv2.min() >= 0  # after ReLU
    black = np.array(explain.ACTIVATION_COLOURS(0.0, bytes=True)[:3])
    for maps, shape in [(seen.conv1, (4, 8)), (seen.conv2, (8, 8))]:
        grid = explain.feature_grid(maps)
        found = tiles(grid)
        assert len(found) == maps.shape[0]
        side = explain.TILE_SIDE
        assert grid.shape == (
            shape[0] * (side + explain.GAP) - explain.GAP,
            shape[1] * (side + explain.GAP) - explain.GAP,
            3,
        )
        zoom = side // maps.shape[1]
        for tile, fmap in zip(found, maps.numpy(), strict=True):
            assert tile.shape == (side, side, 3)
            small = tile[::zoom, ::zoom]  # back to one pixel per map value
            brightness = small.astype(int).sum(axis=2)
            if fmap.max() == 0:
                assert (small == black).all()  # a filter that did not respond stays black
                continue
            assert (small[fmap == 0] == black).all()
            peak = np.unravel_index(fmap.argmax(), fmap.shape)
            assert brightness[peak] == brightness.max()


def test_explain_drawing_answers_a_drawing_and_says_why_it_cannot(reader, mnist_test, tmp_path):
    images, labels = (t.numpy() for t in mnist_test)
    draw(images[0], np.random.default_rng(0), pen_fraction=0.12).save(tmp_path / "seven.png")
    payload = {"background": None, "layers": [], "composite": {"path": str(tmp_path / "seven.png")}}
    top, saliency, conv1, conv2 = reader.explain_drawing(payload)
    assert max(top, key=top.get) == str(labels[0])
    assert saliency.shape == (280, 280, 3) and conv1.shape[1] == conv2.shape[1]
    assert reader.explain_drawing(None) == (app.HINT, None, None, None)
    message, *pictures = reader.explain_drawing(payload, 2)
    assert message == "There is no digit 2: the drawing has 1 digit." and pictures == [None] * 3


@pytest.fixture(scope="module")
def client():
    with serve() as url:
        yield Client(url, verbose=False)


def sketch(path) -> dict:
    return {"background": None, "layers": [], "composite": handle_file(str(path))}


def test_explain_endpoint_answers_a_digit_and_an_empty_canvas(client, mnist_test, tmp_path):
    images, labels = (t.numpy() for t in mnist_test)
    rng = np.random.default_rng(1)
    for i in range(3):
        draw(images[i], rng, pen_fraction=0.12).save(tmp_path / f"digit{i}.png")
        top, saliency, conv1, conv2 = client.predict(
            sketch(tmp_path / f"digit{i}.png"), api_name="/explain"
        )
        assert top["label"] == str(labels[i])
        assert len(top["confidences"]) == app.TOP_CLASSES
        assert top["confidences"][0]["confidence"] > top["confidences"][1]["confidence"]
        assert np.asarray(Image.open(saliency)).shape == (280, 280, 3)
        assert len(tiles(np.asarray(Image.open(conv1)))) == 32
        assert len(tiles(np.asarray(Image.open(conv2)))) == 64
    Image.new("RGBA", (280, 280), (0, 0, 0, 0)).save(tmp_path / "empty.png")
    for value in (sketch(tmp_path / "empty.png"), None):
        assert client.predict(value, api_name="/explain") == (
            {"label": app.HINT, "confidences": None},
            None,
            None,
            None,
        )
    (tmp_path / "text.png").write_text("not an image")
    top, *pictures = client.predict(sketch(tmp_path / "text.png"), 1, api_name="/explain")
    assert "read" in top["label"] and pictures == [None] * 3
    top, *pictures = client.predict(sketch(tmp_path / "digit0.png"), 3, api_name="/explain")
    assert "no digit 3" in top["label"] and pictures == [None] * 3
