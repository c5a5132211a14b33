"""preprocess.py on real MNIST test digits: redrawn on canvases, photographed, and broken."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import app
import preprocess
import segment
from harness.drawn import drawings
from model import CLASS_NAMES, DIGIT_BOX, IMAGE_SIZE

DRAWINGS = 1000  # a steadier estimate than the 500 the issue asks for; 5 s on 2 cores


def top_class(reader, image) -> str | None:
    """The digit the app's model ranks first for the image's one glyph, or None when there
    is no glyph or several. Whether it is sure enough to call it a digit is the threshold's
    business, measured in benchmarks/heldout.py; this file tests what the model is given."""
    read = reader.read(image)
    return CLASS_NAMES[int(read.probabilities[0].argmax())] if len(read.glyphs) == 1 else None


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def on_paper(digit: np.ndarray) -> Image.Image:
    """An MNIST digit in dark ink on white paper, at canvas size."""
    return Image.fromarray(255 - digit).resize((280, 280), Image.BILINEAR)


def test_drawn_digits_are_read(reader, mnist_test):
    images, labels = (t.numpy() for t in mnist_test)
    results = [
        top_class(reader, np.asarray(im)) == str(label)
        for im, label, _ in drawings(images, labels, DRAWINGS, seed=2024)
    ]
    assert np.mean(results) >= 0.98


def test_output_is_the_model_contract_and_looks_like_mnist(mnist_test):
    """Drawn or MNIST, the output is MNIST-shaped; MNIST digits come back almost unchanged."""
    images, labels = (t.numpy() for t in mnist_test)
    for drawing, _, _ in drawings(images, labels, 20, seed=7):
        x = preprocess.to_model_input(drawing)
        assert x.shape == (1, 1, IMAGE_SIZE, IMAGE_SIZE) and x.dtype == torch.float32
        assert x.min() >= 0 and x.max() == 1
        digit = x[0, 0].numpy()
        rows, cols = np.nonzero(digit.any(axis=1))[0], np.nonzero(digit.any(axis=0))[0]
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 == DIGIT_BOX
        centre = np.array([digit.sum(axis=1) @ np.arange(28), digit.sum(axis=0) @ np.arange(28)])
        assert np.abs(centre / digit.sum() - 14).max() <= 1.0
    differences = [
        np.abs(preprocess.to_model_input(images[i])[0, 0].numpy() - images[i] / 255).mean()
        for i in range(200)
    ]
    assert np.median(differences) < 0.02


def no_pieces(picture: np.ndarray) -> bool:
    return len(segment.pieces(preprocess.ink(picture)).boxes) == 0


@pytest.mark.parametrize(
    "blank",
    [
        np.full((800, 800, 3), 255, np.uint8),  # empty white canvas
        np.zeros((800, 800, 4), np.uint8),  # empty transparent canvas, as a browser exports it
        np.zeros((600, 400), np.uint8),  # all black
        np.full((1, 1), 255, np.uint8),  # one pixel
        np.full((1, 1, 4), 255, np.uint8),
    ],
)
def test_blank_pictures_give_no_digit(reader, blank):
    assert preprocess.to_model_input(blank) is None and no_pieces(blank)
    assert reader.answer(blank)[:2] == ({"label": app.HINT, "confidences": None}, None)


def test_a_speck_of_ink_is_not_a_digit():
    canvas = np.full((800, 800, 3), 255, np.uint8)
    canvas[400:410, 300:310] = 0
    assert preprocess.to_model_input(canvas) is None and no_pieces(canvas)


def test_light_on_dark_colours_and_transparency(reader, mnist_test):
    images, labels = (t.numpy() for t in mnist_test)
    for digit, label in zip(images[:30], labels[:30], strict=True):
        big = np.asarray(Image.fromarray(digit).resize((300, 300), Image.BILINEAR))
        white_on_black = big
        blue_on_transparent = np.zeros((300, 300, 4), np.uint8)
        blue_on_transparent[..., 2] = 200
        blue_on_transparent[..., 3] = big  # ink opacity, RGB under clear pixels arbitrary
        sixteen_bit = Image.fromarray((255 - big).astype(np.uint16) * 257)
        for picture in (white_on_black, blue_on_transparent, sixteen_bit):
            assert top_class(reader, picture) == str(label)


def test_photos_with_uneven_light_and_jpeg_noise(reader, mnist_test, tmp_path):
    """Grey paper lit from one side, camera noise, JPEG at quality 50: read like clean ink."""
    images, labels = (t.numpy() for t in mnist_test)
    rng = np.random.default_rng(0)
    light = np.linspace(0.45, 0.95, 400)[None, :] * np.linspace(0.8, 1.0, 400)[:, None]
    correct = 0
    for i in range(100):
        ink = np.asarray(Image.fromarray(images[i]).resize((240, 240), Image.BILINEAR)) / 255
        paper = np.ones((400, 400))
        top, left = rng.integers(0, 160, size=2)
        paper[top : top + 240, left : left + 240] -= 0.8 * ink
        photo = np.clip(paper * light * 255 + rng.normal(0, 6, paper.shape), 0, 255)
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(encode(Image.fromarray(photo.astype(np.uint8)), "JPEG", quality=50))
        correct += top_class(reader, preprocess.read_image(str(path))) == str(labels[i])
    assert correct >= 97


def test_exif_orientation_is_applied(reader, mnist_test, tmp_path):
    images, labels = (t.numpy() for t in mnist_test)
    sideways = on_paper(images[0]).rotate(90, expand=True)  # as a phone stores a turned photo
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    path = tmp_path / "photo.jpg"
    path.write_bytes(encode(sideways.convert("RGB"), "JPEG", exif=exif))
    assert top_class(reader, preprocess.read_image(str(path))) == str(labels[0])


def test_a_huge_image_is_shrunk_first(reader, mnist_test, tmp_path):
    images, labels = (t.numpy() for t in mnist_test)
    page = Image.new("L", (10_000, 10_000), 255)
    page.paste(on_paper(images[1]).resize((4000, 4000)), (5000, 1000))
    path = tmp_path / "huge.png"
    page.save(path)
    assert top_class(reader, preprocess.read_image(str(path))) == str(labels[1])
    assert top_class(reader, np.asarray(page)) == str(labels[1])


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims to be width x height but holds a few bytes of pixels: a
    decompression bomb's calling card, to be refused before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(bytes(64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not an image\n", "could not be read"),
        (encode(Image.new("L", (280, 280), 255))[:100], "could not be read"),  # truncated PNG
        (png_header_only(12_000, 12_000), "too big"),
        (png_header_only(30_000, 30_000), "too big"),
        (b"", "could not be read"),
    ],
)
def test_unreadable_files_get_a_clear_message(tmp_path, content, message):
    path = tmp_path / "digit.png"
    path.write_bytes(content)
    with pytest.raises(preprocess.ImageError, match=message):
        preprocess.read_image(str(path))


def test_arrays_of_any_layout_are_accepted(reader, mnist_test):
    images, labels = (t.numpy() for t in mnist_test)
    digit = np.asarray(Image.fromarray(images[3]).resize((100, 100), Image.BILINEAR))
    for picture in (digit, digit[..., None], digit / 255.0, digit > 127, np.stack([digit] * 3, -1)):
        assert top_class(reader, picture) == str(labels[3])
    for read in (preprocess.to_model_input, preprocess.ink):
        with pytest.raises(preprocess.ImageError):
            read(np.zeros((4, 4, 5), np.uint8))
