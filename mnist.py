"""MNIST (LeCun, Cortes and Burges, 1998): its files, read and, when missing, downloaded.

    images, labels = load_mnist(DATA_DIR, train=True)   # uint8 (60000, 28, 28), int64 (60000,)

The four files are read here (the IDX format is a few bytes of header and then the pixels:
reading them takes milliseconds, where importing torchvision to do it takes a second of
every run); torchvision downloads them, and without a network this says which files to put
where.
"""

import contextlib
import io
import struct
import sys
from pathlib import Path

import numpy as np
import torch

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
    prefix = "train" if train else "t10k"
    try:
        images = read_idx(raw / f"{prefix}-images-idx3-ubyte")
        labels = read_idx(raw / f"{prefix}-labels-idx1-ubyte")
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError("the images and labels do not match")
    except (OSError, ValueError, struct.error) as e:  # a truncated or foreign file
        sys.exit(f"Could not read MNIST from {raw}/ ({e}). Delete those files and run again.")
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes, as MNIST is distributed (LeCun et al., 1998): a magic
    number (two zero bytes, type 0x08, the number of dimensions), each dimension as a
    big-endian 32-bit integer, then the data. ValueError for anything else."""
    data = Path(path).read_bytes()
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise ValueError(f"{Path(path).name} is not an IDX file of unsigned bytes")
    dims = data[3]
    shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
    pixels = np.frombuffer(data, np.uint8, offset=4 + 4 * dims)
    if pixels.size != int(np.prod(shape)):
        raise ValueError(f"{Path(path).name} holds {pixels.size:,} bytes, not {shape}")
    return pixels.reshape(shape).copy()  # writable, as torch wants


def download_mnist(data_dir: Path) -> None:
    """torchvision's download, with one clear message when it is impossible (offline)."""
    import torchvision  # only to download: a second to import

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
