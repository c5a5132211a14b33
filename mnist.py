"""MNIST (LeCun, Cortes and Burges, 1998): its files, read and, when missing, downloaded.

    images, labels = load_mnist(DATA_DIR, train=True)   # uint8 (60000, 28, 28), int64 (60000,)

torchvision reads and downloads the four IDX files; without a network, this says which
files to put where.
"""

import contextlib
import io
import sys
from pathlib import Path

import torch
import torchvision

DATA_DIR = Path(__file__).resolve().parent / "data"
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def load_mnist(data_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST's training (60,000) or test (10,000) images, uint8 (N, 28, 28), and labels,
    int64 (N,), downloading them first if absent. Exits with what to do when the files
    cannot be read or downloaded."""
    raw = Path(data_dir) / "MNIST" / "raw"
    if not all((raw / name).exists() for name in MNIST_FILES):
        download_mnist(Path(data_dir))
    try:
        dataset = torchvision.datasets.MNIST(data_dir, train=train, download=False)
    except Exception as e:  # a truncated or foreign file fails in many different ways
        sys.exit(f"Could not read MNIST from {raw}/ ({e}). Delete those files and run again.")
    return dataset.data, dataset.targets


def download_mnist(data_dir: Path) -> None:
    """torchvision's download, with one clear message when it is impossible (offline)."""
    print(f"MNIST not found in {data_dir}; downloading it...", file=sys.stderr)
    chatter = io.StringIO()  # torchvision prints every failed mirror; we say it once
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            torchvision.datasets.MNIST(data_dir, train=True, download=True)
    except Exception as e:
        sys.exit(
            f"Could not download MNIST ({type(e).__name__}). Without a network, put the four "
            f"files {', '.join(MNIST_FILES)} (uncompressed) in {data_dir / 'MNIST' / 'raw'}/ "
            "and run again."
        )
