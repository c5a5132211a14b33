"""The seed's own one-epoch training script, re-implemented faithfully: the yardstick that
`python train.py --epochs 1` is timed against (benchmarks/one_epoch.py).

    .venv/bin/python -m benchmarks.seed_recipe [--data-dir data]

The seed's network, bugs included: a Softmax at its end, fed to CrossEntropyLoss (which
applies its own log-softmax), and Dropout2d on the flat features' maps. Batch 32, Adam at
1e-3, one epoch through a DataLoader with ToTensor, and a check on 2,000 test images every
50 steps; then the accuracy on all 10,000. It writes nothing.
"""

import argparse
import time

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Subset

from mnist import DATA_DIR

BATCH_SIZE = 32
LR = 1e-3
CHECK_EVERY = 50  # steps
CHECK_IMAGES = 2_000


class SeedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(32, 64, 5),
            nn.Dropout2d(),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(1024, 128), nn.ReLU(), nn.Dropout(), nn.Linear(128, 10), nn.Softmax(dim=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@torch.no_grad()
def accuracy(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()
        total += len(y)
    model.train()
    return correct / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DATA_DIR)
    args = parser.parse_args()
    started = time.perf_counter()
    to_tensor = torchvision.transforms.ToTensor()
    train = torchvision.datasets.MNIST(args.data_dir, train=True, transform=to_tensor)
    test = torchvision.datasets.MNIST(args.data_dir, train=False, transform=to_tensor)
    loader = DataLoader(train, batch_size=BATCH_SIZE, shuffle=True)
    check = DataLoader(Subset(test, range(CHECK_IMAGES)), batch_size=1000)
    model = SeedNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    for step, (x, y) in enumerate(loader):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % CHECK_EVERY == 0:
            print(f"step {step}  loss {loss.item():.4f}  check {accuracy(model, check):.2%}")
    final = accuracy(model, DataLoader(test, batch_size=1000))
    print(f"test accuracy {final:.2%}  in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
