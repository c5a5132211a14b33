"""The app as visitors' programs see it: a real server, called with gradio_client."""

import base64
import json
import shutil
import struct
import subprocess
import sys
import time
import urllib.request
import zlib

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

import app
import preprocess
import reading
from harness.drawn import BOX_SLACK, draw, number_canvas
from harness.server import ROOT, serve
from harness.visitor import Visitor, data_url
from model import WEIGHTS_PATH, load_model, read_metadata, save_weights
from report import report_path

DIGITS = 8  # the first MNIST test digits, sent through each endpoint


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    with serve(log_path=log) as url:
        yield Client(url, verbose=False), log


def sketch(path) -> dict:
    """The sketchpad's value as a program sends it: the drawing as the composite."""
    return {"background": None, "layers": [], "composite": handle_file(str(path))}


def confidences(label: dict) -> dict[str, float]:
    return {c["label"]: c["confidence"] for c in label["confidences"]}


def test_both_endpoints_answer_as_the_app_computes(reader, server, mnist_test, tmp_path):
    """Real digits through the server give the in-process answer: ten probabilities, the
    28x28 picture the model saw, and the reading as JSON."""
    client, _ = server
    images, labels = (t.numpy() for t in mnist_test)
    rng = np.random.default_rng(0)
    for i in range(DIGITS):
        drawing = draw(images[i], rng, pen_fraction=0.12)  # RGBA (transparent) or RGB
        photo = Image.fromarray(255 - images[i]).resize((300, 300), Image.BILINEAR)
        drawing.save(tmp_path / f"drawing{i}.png")
        photo.save(tmp_path / f"photo{i}.jpg", quality=85)
        for api, arg, image in [
            ("/predict", sketch(tmp_path / f"drawing{i}.png"), np.asarray(drawing)),
            ("/classify", handle_file(str(tmp_path / f"photo{i}.jpg")), None),
        ]:
            label, seen, json = client.predict(arg, api_name=api)
            got = confidences(label)
            assert list(got) == sorted(got, key=got.get, reverse=True) and len(got) == 10
            assert label["label"] == str(labels[i])
            assert sum(got.values()) == pytest.approx(1, abs=1e-4)
            preview = np.asarray(Image.open(seen))
            assert preview.shape[:2] == (28, 28)
            assert json["status"] == "digit" and json["text"] == str(labels[i])
            assert json["message"] is None and len(json["digits"]) == 1
            assert json["digits"][0]["digit"] == str(labels[i])
            assert json["digits"][0]["confidence"] == pytest.approx(got[str(labels[i])], abs=1e-4)
            if image is not None:
                expected = reader.read(image)
                assert got == pytest.approx(confidences(app.label_value(expected)), abs=1e-5)
                assert np.array_equal(gray(preview), app.seen_image(expected))
                assert json == expected.as_json()


def gray(preview: np.ndarray) -> np.ndarray:
    return preview[..., 0] if preview.ndim == 3 else preview


def test_a_number_through_both_endpoints(reader, server, mnist_test, tmp_path):
    """Three real digits side by side on the app's canvas: read as a number, each digit's
    best readings labelled by position, every glyph's 28x28 in order, and the JSON's boxes
    in the picture's own pixels, for a sketch and for a twice bigger photo."""
    client, _ = server
    images, labels = (t.numpy() for t in mnist_test)
    canvas, boxes = number_canvas([images[i] for i in (0, 1, 2)], np.random.default_rng(5))
    truth = "".join(str(labels[i]) for i in (0, 1, 2))
    Image.fromarray(canvas).save(tmp_path / "number.png")
    photo = Image.fromarray(255 - canvas[..., 3]).resize((1120, 560), Image.BILINEAR)
    photo.save(tmp_path / "number.jpg", quality=90)
    for api, arg, scale in [
        ("/predict", sketch(tmp_path / "number.png"), 1),
        ("/classify", handle_file(str(tmp_path / "number.jpg")), 2),
    ]:
        label, seen, json = client.predict(arg, api_name=api)
        assert label["label"] == truth and json["text"] == truth, api
        assert (json["status"], json["message"]) == ("number", None)
        rows = [c["label"] for c in label["confidences"]]
        assert {row.split(": ")[0] for row in rows} == set(reading.ORDINALS[:3])
        tops = [next(r for r in rows if r.startswith(o)) for o in reading.ORDINALS[:3]]
        assert tops == [f"{o}: {d}" for o, d in zip(reading.ORDINALS, truth, strict=False)]
        for entry, digit, box in zip(json["digits"], truth, boxes, strict=True):
            assert entry["digit"] == digit and entry["confidence"] >= reader.min_confidence
            true_box = np.multiply(box, scale)
            assert np.abs(np.subtract(entry["box"], true_box)).max() <= BOX_SLACK * scale, api
        preview = gray(np.asarray(Image.open(seen)))
        assert preview.shape == (28, 3 * 28 + 2 * app.GLYPH_GAP)
        assert (preview[:, 28 : 28 + app.GLYPH_GAP] == app.GAP_SHADE).all()
        if api == "/predict":  # the sketch's pixels are the canvas's: the in-process answer
            expected = reader.read(canvas)
            assert np.array_equal(preview, app.seen_image(expected))
            assert json == expected.as_json()
            assert confidences(label) == pytest.approx(
                confidences(app.label_value(expected)), abs=1e-5
            )


HUGE_ONE = (4500, 2000, 5500, 8000)  # a "1" drawn with a thick pen; a 1:3 block is no digit


def write_bad_inputs(folder) -> dict[str, bytes | Image.Image]:
    digit_png = folder / "digit.png"
    Image.new("L", (280, 280), 255).save(digit_png)
    huge = Image.new("L", (10_000, 10_000), 255)
    huge.paste(0, HUGE_ONE)
    speck = Image.new("RGB", (800, 800), "white")
    speck.paste((0, 0, 0), (400, 400, 408, 408))
    return {
        "white.png": Image.new("RGB", (800, 800), "white"),
        "transparent.png": Image.new("RGBA", (800, 800), (0, 0, 0, 0)),
        "black.png": Image.new("L", (800, 800), 0),
        "one_pixel.png": Image.new("L", (1, 1), 255),
        "speck.png": speck,
        "huge.png": huge,
        "gray16.png": Image.fromarray(np.full((280, 280), 60000, np.uint16)),
        "truncated.png": digit_png.read_bytes()[:200],
        "text.png": b"this is not an image\n",
    }


def test_bad_input_gets_a_short_answer_and_the_server_stays_up(server, tmp_path):
    client, log = server
    for name, content in write_bad_inputs(tmp_path).items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content.save(path)
        for api, arg in [("/predict", sketch(path)), ("/classify", handle_file(str(path)))]:
            label, seen, json = client.predict(arg, api_name=api)
            if name == "huge.png":  # shrunk 39x first, then read; the box in its own pixels
                assert label["label"] == "1" and json["text"] == "1", api
                (one,) = json["digits"]
                assert np.abs(np.subtract(one["box"], HUGE_ONE)).max() <= 39
                continue
            assert label["confidences"] is None and seen is None, (api, name)
            assert json["text"] is None and json["digits"] == [], (api, name)
            assert json["message"] == label["label"], (api, name)
            if name in ("truncated.png", "text.png"):
                assert "read" in label["label"], (api, name)  # says what went wrong
                assert json["status"] == "unreadable", (api, name)
            else:
                assert label["label"] == app.HINT, (api, name)
                assert json["status"] == "empty", (api, name)
    empty = {"status": "empty", "text": None, "digits": [], "message": app.HINT}
    for api in ("/predict", "/classify"):
        assert client.predict(None, api_name=api) == (
            {"label": app.HINT, "confidences": None},
            None,
            empty,
        )
    label, _, json = client.predict(
        handle_file(str(ROOT / "tests" / "test_app.py")), api_name="/classify"
    )
    assert label["confidences"] is None
    assert json == {
        "status": "unreadable",
        "text": None,
        "digits": [],
        "message": preprocess.UNREADABLE,
    }
    assert "Traceback" not in log.read_text()


def test_the_api_names_its_endpoints(server):
    client, _ = server
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/predict", "/classify", "/explain"}
    for name in ("/predict", "/classify"):
        assert [r["component"] for r in endpoints[name]["returns"]] == ["Label", "Image", "Json"]
    explain = endpoints["/explain"]  # tests/test_explain.py calls it
    assert [p["component"] for p in explain["parameters"]] == ["Imageeditor", "Number"]
    assert explain["parameters"][1]["parameter_has_default"]
    assert [r["component"] for r in explain["returns"]] == ["Label", "Image", "Image", "Image"]
    everything = client.view_api(print_info=False, return_format="dict", all_endpoints=True)
    assert everything["unnamed_endpoints"] == {}  # the live canvas's events are private


def canvas_drawing(digit: np.ndarray, seed: int) -> Image.Image:
    """A real MNIST digit redrawn on the page's canvas, white, as sketchpad.js sends it."""
    drawing = draw(digit, np.random.default_rng(seed), 0.12, canvas_size=app.CANVAS_SIZE)
    return Image.alpha_composite(
        Image.new("RGBA", app.CANVAS_SIZE, "white"), drawing.convert("RGBA")
    )


def test_the_canvas_event_reads_as_the_app_computes_and_explains_once_a_stroke(
    reader, server, mnist_test
):
    """The page's own events on a live server: each picture gets the in-process label and
    JSON; only the picture at pen-up changes what the model saw and what the explanation
    reads, and it explains that picture."""
    client, _ = server
    visitor = Visitor(client.src)
    images, labels = (t.numpy() for t in mnist_test)
    for i in range(4):
        picture = canvas_drawing(images[i], i)
        expected = reader.read(np.asarray(picture))
        for pen_up in (False, True):
            done = visitor.send(data_url(picture), pen_up=pen_up)
            assert done["success"]
            label, seen, reading_json, _ = done["output"]["data"]
            assert label == app.label_value(expected)
            assert reading_json == expected.as_json() and reading_json["text"] == str(labels[i])
            if pen_up:  # the glyphs, as a picture file (the page's <img>)
                assert visitor.fetch_pictures(done) == 1 and seen["path"].endswith(".png")
            else:  # left as it was: no picture made while the pen moves
                assert seen == {"__type__": "update"}
            assert bool(done["output"]["changed_state_ids"]) == pen_up  # explain once: pen-up
        explained = visitor.explain()
        top = explained["output"]["data"][0]
        assert top["label"] == str(labels[i])
        in_process = reader.explain_picture(np.asarray(picture))[0]
        shown = confidences(top)  # the top three
        assert shown == pytest.approx({k: in_process[k] for k in shown}, abs=1e-5)
    visitor.close()


def png_header(width: int, height: int) -> bytes:
    """A PNG (8-bit grey) that claims width x height pixels in its header, and holds none."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"")


def test_a_picture_far_larger_than_the_canvas_is_refused_before_decoding():
    """Its header is enough: PNGs that claim 3,000 x 3,000 or 100,000 x 100,000 pixels (and
    hold none: decoding them would fail with another message)."""
    for side in (3_000, 100_000):
        claim = "data:image/png;base64," + base64.b64encode(png_header(side, side)).decode()
        with pytest.raises(preprocess.ImageError, match="not the canvas's"):
            app.canvas_picture({"png": claim, "pen_up": True})
    with pytest.raises(preprocess.ImageError, match="not the canvas's"):  # by its length alone
        app.canvas_picture(
            {"png": "data:image/png;base64," + "A" * (4 * app.MAX_PICTURE_PIXELS * 4 // 3 + 1)}
        )


def test_bad_canvas_values_get_a_message_and_the_server_stays_up(server, tmp_path):
    client, log = server
    visitor = Visitor(client.src)
    jpeg = tmp_path / "digit.jpg"
    Image.new("RGB", app.CANVAS_SIZE, "white").save(jpeg)
    big = Image.new("1", (4 * app.CANVAS_SIZE[0], 4 * app.CANVAS_SIZE[1]), 1)
    prefix = "data:image/png;base64,"
    not_a_png = {
        "text": prefix + base64.b64encode(b"this is not an image").decode(),
        "not base64": prefix + "%%%",
        "truncated": data_url(Image.new("RGB", app.CANVAS_SIZE, "white"))[:300],
        "a JPEG": "data:image/jpeg;base64," + base64.b64encode(jpeg.read_bytes()).decode(),
        "a number": 5,
        "a list": [1, 2],
        "no png": {},
    }
    answers = {name: visitor.send(value, pen_up=True) for name, value in not_a_png.items()}
    for name, value in [("not a dict", "x"), ("a bare number", 7)]:  # the whole value
        answers[name] = visitor.send_value(value)
    began = time.perf_counter()
    answers["16 times the canvas"] = visitor.send(data_url(big), pen_up=True)
    refused_in = time.perf_counter() - began
    for name, done in answers.items():
        assert done["success"], name
        label, seen, reading_json, _ = done["output"]["data"]
        assert seen is None and label["confidences"] is None, name
        too_big = preprocess.TOO_BIG_DRAWING.format(app.MAX_PICTURE_PIXELS)
        expected = too_big if name == "16 times the canvas" else preprocess.NOT_A_PNG
        assert label["label"] == expected and reading_json["message"] == expected, name
        assert reading_json["status"] == "unreadable", name
    assert refused_in < 10  # refused from its header, not decoded (a slow machine's margin)
    top = visitor.explain()["output"]["data"][0]  # the explanation of a bad picture: a message
    assert top["label"] == preprocess.TOO_BIG_DRAWING.format(app.MAX_PICTURE_PIXELS)
    done = visitor.send(data_url(Image.new("RGB", app.CANVAS_SIZE, "white")), pen_up=True)
    assert done["output"]["data"][0]["label"] == app.HINT  # and the server reads on
    assert "Traceback" not in log.read_text()
    visitor.close()


def test_about_view_shows_the_shipped_weights_header(reader, server):
    """The page's "About the model", as the server sends it, states the weights' own facts."""
    client, _ = server
    with urllib.request.urlopen(client.src + "config", timeout=30) as response:
        props = [c.get("props", {}) for c in json.load(response)["components"]]
    shown = {p["elem_id"]: p.get("value") for p in props if p.get("elem_id")}
    meta = read_metadata(WEIGHTS_PATH)
    training = shown["about-training"]
    assert f"| {float(meta['test_accuracy']):.2%} |" in training
    assert f"| Epochs | {meta['epochs']} |" in training
    assert f"| Seed | {meta['seed']} |" in training and f"| Date | {meta['date']} |" in training
    params = sum(p.numel() for p in reader.model.parameters())
    assert f"{params:,} parameters" in shown["about-architecture"]
    if report_path(WEIGHTS_PATH).exists():
        assert shown["training-report"]["orig_name"] == report_path(WEIGHTS_PATH).name
    else:
        assert "training-report" not in shown and "No training report" in training


@pytest.mark.parametrize(
    "weights", [None, b"not safetensors at all", b"", "no threshold", "a bad threshold"]
)
def test_missing_or_damaged_weights_stop_the_app_with_a_clear_message(tmp_path, weights):
    for module in [*ROOT.glob("*.py"), ROOT / "sketchpad.js"]:  # the app and what it reads
        shutil.copy(module, tmp_path)
    path = tmp_path / "weights" / "convnet.safetensors"
    if isinstance(weights, bytes):
        path.parent.mkdir()
        path.write_bytes(weights)
    elif weights is not None:  # the right weights, without a usable "not a digit" threshold
        header = read_metadata(WEIGHTS_PATH)
        header.pop("min_confidence")
        if weights == "a bad threshold":
            header["min_confidence"] = "high"
        save_weights(load_model(WEIGHTS_PATH), path, header)
    done = subprocess.run(
        [sys.executable, "app.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "cannot start" in done.stderr and "python train.py" in done.stderr
