"""The ConvNet, the ensemble of them, its weights file, and the committed weights on the real
MNIST test set and on what a segmentation search cuts wrong."""

import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

import about
import explain
import preprocess
import synth
from model import (
    CLASS_NAMES,
    IMAGE_SIZE,
    WEIGHTS_PATH,
    ConvNet,
    Ensemble,
    WeightsError,
    load_model,
    read_metadata,
    save_weights,
)
from train import accuracy, to_inputs

CASES = WEIGHTS_PATH.parent.parent.parent / "shared" / "cases"
MIN_CONFIDENCE = float(read_metadata()["min_confidence"])
JUNK_DECLINED = 0.9  # of wrong cuts; the shipped weights decline 94.5% (docs/MEASUREMENTS.md)


def test_shapes_logits_and_parameter_count():
    net = ConvNet().eval()
    logits = net(torch.rand(5, 1, IMAGE_SIZE, IMAGE_SIZE))
    assert logits.shape == (5, len(CLASS_NAMES))
    # Logits, not probabilities: softmax is applied by whoever shows them.
    assert not torch.allclose(logits.sum(1), torch.ones(5))
    assert torch.allclose(logits.softmax(1).sum(1), torch.ones(5))
    assert sum(p.numel() for p in net.parameters()) == 184_586


def test_dropout_fits_its_features_and_is_off_in_eval():
    net = ConvNet()
    # Whole maps on the conv side; plain dropout on the flat features (the seed's bug was
    # Dropout2d there).
    assert type(net.conv_dropout) is nn.Dropout2d and type(net.fc_dropout) is nn.Dropout
    x = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE)
    net.eval()
    assert torch.equal(net(x), net(x))


def test_save_load_round_trip(tmp_path):
    net = ConvNet().eval()
    path = tmp_path / "sub" / "w.safetensors"
    save_weights(net, path, {"epochs": "3"})
    loaded = load_model(path)
    x = torch.rand(3, 1, IMAGE_SIZE, IMAGE_SIZE)
    assert torch.equal(loaded(x), net(x))
    assert not loaded.training
    assert read_metadata(path) == {"epochs": "3"}
    assert [p.name for p in path.parent.iterdir()] == ["w.safetensors"]  # no temp file left


def test_missing_weights_say_what_to_do(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(WeightsError, match="does not exist.*python train.py") as e:
        load_model(path)
    assert str(path) in str(e.value)


def test_truncated_weights(tmp_path):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(WEIGHTS_PATH.read_bytes()[:50_000])
    with pytest.raises(WeightsError, match="is damaged"):
        load_model(path)


def test_text_file_is_not_weights(tmp_path):
    path = tmp_path / "text.safetensors"
    path.write_text("these are not weights")
    with pytest.raises(WeightsError, match="is damaged"):
        load_model(path)
    with pytest.raises(WeightsError, match="is damaged"):
        read_metadata(path)


def test_weights_of_another_model(tmp_path):
    path = tmp_path / "other.safetensors"
    save_weights(nn.Linear(4, 2), path, {})
    with pytest.raises(WeightsError, match="different model"):
        load_model(path)


def test_default_path_does_not_depend_on_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_model()(torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE)).shape == (1, len(CLASS_NAMES))


def _trained_convnet(model: nn.Module) -> ConvNet:
    """The committed reader's (first) ConvNet."""
    return model.members[0] if isinstance(model, Ensemble) else model


def test_ensemble_is_one_module_reading_the_members_mean(tmp_path, model, mnist_test):
    # A trained member and an untrained one: they disagree, which the mean must show.
    ensemble = Ensemble(2).eval()
    ensemble.members[0].load_state_dict(_trained_convnet(model).state_dict())
    path = tmp_path / "ensemble.safetensors"
    save_weights(ensemble, path, {"members": "2"})
    loaded = load_model(path)
    assert isinstance(loaded, Ensemble) and len(loaded.members) == 2 and not loaded.training
    x = to_inputs(mnist_test[0][:200], torch.device("cpu"))
    with torch.no_grad():
        scores = loaded(x)
        members = [m(x).softmax(1) for m in ensemble.members]
    assert scores.shape == (200, len(CLASS_NAMES))
    mean = (members[0] + members[1]) / 2
    assert torch.allclose(scores.softmax(1), mean, atol=1e-6)
    assert torch.equal(scores.argmax(1), mean.argmax(1))
    # The untrained member halves the trained one's certainty on every digit.
    assert scores.softmax(1).amax(1).max() < 0.6


def test_ensemble_keeps_the_inside_and_about_views_working(tmp_path, model, mnist_test):
    ensemble = Ensemble(3).eval()
    for member in ensemble.members:
        member.load_state_dict(_trained_convnet(model).state_dict())
    x = to_inputs(mnist_test[0][:1], torch.device("cpu"))
    seen = explain.explain(ensemble, x)
    alone = explain.explain(_trained_convnet(model), x)
    # Three copies of one member read as that member: same answer, maps and saliency.
    assert seen.predicted == alone.predicted == int(mnist_test[1][0])
    assert torch.allclose(seen.probabilities, alone.probabilities, atol=1e-5)
    assert torch.equal(seen.conv1, alone.conv1) and torch.equal(seen.conv2, alone.conv2)
    assert abs(float(seen.attributions.sum()) - seen.logit_change) < 0.05 * abs(seen.logit_change)
    save_weights(ensemble, tmp_path / "e.safetensors", {"members": "3"})
    architecture, _, _ = about.about_model(ensemble, tmp_path / "e.safetensors")
    assert "Ensemble of 3 ConvNets: 553,758 parameters" in architecture
    assert "`conv1`: `Conv2d(1, 32, kernel_size=(5, 5))`" in architecture


@pytest.mark.parametrize("members", ["3", "0", "1000000", "many"])
def test_header_with_the_wrong_members(tmp_path, members):
    path = tmp_path / "w.safetensors"
    save_weights(ConvNet(), path, {"members": members})
    with pytest.raises(WeightsError, match="different model"):
        load_model(path)


def _declined(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).softmax(1).amax(1) < MIN_CONFIDENCE


def test_committed_weights_decline_wrong_cuts_through_test_digits(model, mnist_test):
    # Made the way training's junk is, but from MNIST's test digits, which training never saw.
    images, labels = mnist_test
    junk = synth.segmentation_junk(images, labels, 300, seed=0)
    assert _declined(model, junk).float().mean() >= JUNK_DECLINED


def _tap(slide: tuple[int, int], brush: int = 18) -> Image.Image:
    """The app's 560x280 canvas with one dab of its brush, slid by `slide` pixels (a tap
    that did not slide is a speck there, which preprocessing drops)."""
    canvas = Image.new("RGB", (560, 280), "white")
    pen = ImageDraw.Draw(canvas)
    (x0, y0), (x1, y1) = (280, 140), (280 + slide[0], 140 + slide[1])
    pen.line([(x0, y0), (x1, y1)], fill="black", width=brush)
    for x, y in ((x0, y0), (x1, y1)):
        pen.ellipse((x - brush / 2, y - brush / 2, x + brush / 2, y + brush / 2), fill="black")
    return canvas


SLIDES = [(6, 0), (10, 3), (0, 8), (14, -14), (20, 0), (-12, 12), (3, 16)]


@pytest.mark.parametrize("slide", SLIDES)
def test_committed_weights_decline_a_tap_on_the_canvas(model, slide):
    assert _declined(model, preprocess.to_model_input(_tap(slide))).all()


def test_committed_weights_decline_the_reported_smudge(model):
    case = CASES / "smudge-tap-slid-10px.png"
    if not case.exists():
        pytest.skip(f"{case} is not here")
    assert _declined(model, preprocess.to_model_input(Image.open(case))).all()


def test_committed_weights_on_the_whole_mnist_test_set(model, mnist_test):
    images, labels = mnist_test
    assert len(images) == 10_000
    measured = accuracy(model, to_inputs(images, torch.device("cpu")), labels)
    assert measured >= 0.994
    # The accuracy written in the file header is the one the file really has.
    assert abs(float(read_metadata()["test_accuracy"]) - measured) < 5e-4


def test_committed_weights_metadata():
    meta = read_metadata()
    for key in ("test_accuracy", "val_accuracy", "epochs", "seed", "lr", "torch_version", "date"):
        assert meta.get(key), key
