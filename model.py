"""The ConvNet that reads digits, and how its weights are saved and loaded.

Input contract (the one place it is stated): a float tensor of shape (N, 1, 28, 28),
pixel values in [0, 1], a white digit on black as in MNIST. The model normalises
internally, so callers never need the MNIST statistics. The output is logits;
apply softmax only where probabilities are shown.
"""

import math
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

IMAGE_SIZE = 28
DIGIT_BOX = 20  # MNIST scaled each digit's longer side to 20 px inside the 28 x 28 image
CLASS_NAMES = tuple(str(digit) for digit in range(10))
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the 60,000 training images, pixels in [0, 1]
WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "convnet.safetensors"
MAX_MEMBERS = 16  # a header asking for more is damaged: never build a million ConvNets


class WeightsError(RuntimeError):
    """The weights file is missing, damaged or does not fit the model."""


class ConvNet(nn.Module):
    """Two 5x5 convolutions and two linear layers: 184,586 parameters."""

    def __init__(self, conv_dropout: float = 0.1, fc_dropout: float = 0.3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=5)  # 28 -> 24, pooled to 12
        self.conv2 = nn.Conv2d(32, 64, kernel_size=5)  # 12 -> 8, pooled to 4
        # Whole maps are dropped on the conv side (as in the origin design); element-wise
        # dropout there draws 720,000 random numbers a batch, a fifth of a CPU training step.
        self.conv_dropout = nn.Dropout2d(conv_dropout)
        self.fc1 = nn.Linear(4 * 4 * 64, 128)
        self.fc_dropout = nn.Dropout(fc_dropout)
        self.fc2 = nn.Linear(128, len(CLASS_NAMES))
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)[-1]

    def stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The forward pass, once: conv1's and conv2's outputs (before pooling and ReLU, at
        24x24 and 8x8) and the logits. `forward` returns the logits; explain.py shows the rest.
        """
        x = (x - MNIST_MEAN) / MNIST_STD
        conv1 = self.conv1(x)
        x = torch.relu(self.pool(conv1))
        conv2 = self.conv2(x)
        x = torch.relu(self.pool(self.conv_dropout(conv2)))
        x = torch.relu(self.fc1(x.flatten(1)))
        return conv1, conv2, self.fc2(self.fc_dropout(x))


class Ensemble(nn.Module):
    """K ConvNets trained side by side that read as one (a deep ensemble: Lakshminarayanan
    et al., 2017): the same (N, 1, 28, 28) input as a ConvNet, and (N, 10) scores, the log of
    the mean of the members' softmax probabilities. So argmax is the digit, and softmax is
    the average belief: members that disagree give a spread one, which says "not a digit"."""

    def __init__(self, members: int) -> None:
        super().__init__()
        self.members = nn.ModuleList(ConvNet() for _ in range(members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)[-1]

    def stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As ConvNet.stages: the first member's conv1 and conv2 outputs (what one member
        sees), and the ensemble's scores."""
        outputs = [member.stages(x) for member in self.members]
        log_probabilities = torch.stack([out[-1].log_softmax(1) for out in outputs])
        scores = log_probabilities.logsumexp(0) - math.log(len(self.members))
        return outputs[0][0], outputs[0][1], scores


def build_model(members: int = 1) -> ConvNet | Ensemble:
    """One ConvNet, or an Ensemble of `members` of them."""
    return ConvNet() if members == 1 else Ensemble(members)


def write_atomically(path: Path, data: bytes) -> None:
    """Write a file atomically: a temporary file in the same folder, then a rename.

    An interrupted write leaves the previous file untouched, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0o600 would hide the file from other users
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Write the weights and their training facts atomically (see write_atomically)."""
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    write_atomically(path, save(tensors, metadata=metadata))


def read_metadata(path: Path = WEIGHTS_PATH) -> dict[str, str]:
    """The training facts stored in the file's header (accuracy, epochs, seed...)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (OSError, SafetensorError) as e:
        raise WeightsError(_weights_problem(path, e)) from None


def load_model(path: Path = WEIGHTS_PATH) -> ConvNet | Ensemble:
    """The trained reader on the CPU in eval mode: a ConvNet, or an Ensemble when the
    header's `members` says more than one; or a WeightsError saying what to do."""
    path = Path(path)
    header = read_metadata(path)  # a WeightsError of its own when the file is damaged
    try:
        members = int(header.get("members", "1"))
        if not 1 <= members <= MAX_MEMBERS:
            raise ValueError(f"{members} members")
        model = build_model(members)
        state = load_file(str(path))  # safetensors: plain tensors, no pickle to execute
        model.load_state_dict(state)
    except (OSError, SafetensorError, RuntimeError, ValueError) as e:
        raise WeightsError(_weights_problem(path, e)) from None
    return model.eval()


def _weights_problem(path: Path, error: Exception) -> str:
    if not Path(path).exists():
        what = "does not exist"
    elif isinstance(error, (RuntimeError, ValueError)) and not isinstance(error, SafetensorError):
        what = "holds weights of a different model"
    else:
        what = "is damaged or not a safetensors file"
    return (
        f"Weights file {path} {what}: restore it with `git checkout -- weights/` "
        "or retrain with `python train.py`."
    )
