"""The ConvNet, its weights file, and the committed weights on the real MNIST test set."""

import pytest
import torch
from torch import nn

from model import (
    CLASS_NAMES,
    IMAGE_SIZE,
    WEIGHTS_PATH,
    ConvNet,
    WeightsError,
    load_model,
    read_metadata,
    save_weights,
)
from train import accuracy, to_inputs


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
    assert load_model().fc2.out_features == len(CLASS_NAMES)


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
