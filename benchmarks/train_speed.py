"""Training images/second: our tensor-on-device loop against a plain torchvision
DataLoader(ToTensor()) loop, and against the usual way to augment (per-image RandomAffine
in the DataLoader), side by side in one run; then batch-1 inference latency.

    python -m benchmarks.train_speed [--steps 60] [--rounds 5]

All loops use the same model, optimiser, batch size and step function (in bfloat16
autocast where train.py uses it), so the difference is the data path alone (plus, for
'ours + augment', our augmentation). 'ours + augment, float32' is the same loop without
bfloat16: the speed train.py gets on a CPU without AMX units.
"""

import argparse
import statistics
import time

import torch
import torchvision
from torch.utils.data import DataLoader

from augment import augment, pen_paths
from mnist import DATA_DIR, load_mnist
from model import IMAGE_SIZE, ConvNet
from train import to_inputs, train_step, uses_bfloat16

BFLOAT16 = uses_bfloat16(torch.device("cpu"))


def fresh_model() -> tuple[ConvNet, torch.optim.Optimizer]:
    model = ConvNet().to(memory_format=torch.channels_last).train()
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def images_per_second_dataloader(loader: DataLoader, steps: int) -> float:
    model, optimizer = fresh_model()
    batches = iter(loader)
    started = time.perf_counter()
    for _ in range(steps):
        x, y = next(batches)
        train_step(model, optimizer, x, y, bfloat16=BFLOAT16)
    return steps * loader.batch_size / (time.perf_counter() - started)


def images_per_second_ours(
    x_all, y_all, paths, batch_size, steps, with_augment, bfloat16=BFLOAT16
) -> float:
    model, optimizer = fresh_model()
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x_all), generator=generator)
    started = time.perf_counter()
    for step in range(steps):
        index = order[step * batch_size : (step + 1) * batch_size]
        x, y = x_all[index], y_all[index]
        if with_augment:
            x = augment(x, paths[index], generator)
        train_step(model, optimizer, x, y, bfloat16=bfloat16)
    return steps * batch_size / (time.perf_counter() - started)


def batch1_latency_ms(threads: int, calls: int = 1000) -> float:
    torch.set_num_threads(threads)
    model = ConvNet().eval()
    x = torch.rand(1, 1, IMAGE_SIZE, IMAGE_SIZE)
    times = []
    with torch.inference_mode():
        for _ in range(50):
            model(x)
        for _ in range(calls):
            started = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60, help="training steps per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians shown")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}")

    T = torchvision.transforms
    plain = torchvision.datasets.MNIST(DATA_DIR, train=True, transform=T.ToTensor())
    affine = T.RandomAffine(degrees=12, translate=(0.07, 0.07), scale=(0.85, 1.15), shear=14)
    augmented = torchvision.datasets.MNIST(
        DATA_DIR, train=True, transform=T.Compose([affine, T.ToTensor()])
    )
    loaders = {
        "DataLoader(ToTensor())": DataLoader(plain, args.batch_size, shuffle=True),
        "DataLoader + RandomAffine": DataLoader(augmented, args.batch_size, shuffle=True),
    }
    images, labels = load_mnist(DATA_DIR, train=True)
    x_all, y_all = to_inputs(images, torch.device("cpu")), labels
    started = time.perf_counter()
    paths = pen_paths(x_all)
    print(
        f"pen paths of all {len(x_all):,} training digits (once per run): "
        f"{time.perf_counter() - started:.1f}s"
    )

    ours = ["ours", "ours + augment"] + (["ours + augment, float32"] if BFLOAT16 else [])
    results = {name: [] for name in [*loaders, *ours]}
    for _ in range(args.rounds):
        for name, loader in loaders.items():
            results[name].append(images_per_second_dataloader(loader, args.steps))
        results["ours"].append(
            images_per_second_ours(x_all, y_all, paths, args.batch_size, args.steps, False)
        )
        results["ours + augment"].append(
            images_per_second_ours(x_all, y_all, paths, args.batch_size, args.steps, True)
        )
        if BFLOAT16:
            results["ours + augment, float32"].append(
                images_per_second_ours(
                    x_all, y_all, paths, args.batch_size, args.steps, True, bfloat16=False
                )
            )
    baseline = statistics.median(results["DataLoader(ToTensor())"])
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:26s} {median:8.0f} images/s  ({median / baseline:.2f}x DataLoader)")

    for threads in (1, 2):
        print(f"batch-1 inference, {threads} thread(s): {batch1_latency_ms(threads):.3f} ms median")


if __name__ == "__main__":
    main()
