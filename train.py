"""Train the ConvNet on MNIST and save the weights that the app loads.

    python train.py                 # the shipped weights (about 5 minutes on a 2-core CPU)
    python train.py --epochs 5 --out /tmp/quick.safetensors

The whole dataset lives on the device as one tensor and batches are drawn by index,
augmented there in one batched step: no DataLoader or per-image PIL work in the loop.
"""

import argparse
import contextlib
import io
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from tqdm import tqdm

import report
from model import WEIGHTS_PATH, ConvNet, save_weights, write_atomically
from synth import NONDIGIT_PEN_STEPS, augment, digit_styles, nondigits, pen_paths

DATA_DIR = Path(__file__).resolve().parent / "data"
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
VAL_SIZE = 5_000  # the last training images; they report progress and set the threshold below
EVAL_BATCH = 2_000
# Outlier exposure (Hendrycks et al., 2019): each batch of digits comes with pictures of other
# things, for which the loss asks for an even belief over the ten digits; a low top
# probability then means "not a digit".
NONDIGITS = 12_000  # synthesised once (synth.nondigits); 3,000 more for the threshold
NONDIGITS_PER_BATCH = 32
OUTLIER_WEIGHT = 0.5  # Hendrycks et al.'s weight for the even-belief loss
STYLED_DIGITS_PER_BATCH = 8  # digits in other styles (synth.digit_styles) in each batch
DECLINE_RATE = 0.01  # of the drawn validation digits that the threshold may decline


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device, else the available accelerator (CUDA, MPS, XPU...), else CPU."""
    if requested:
        try:
            device = torch.device(requested)
            torch.empty(1, device=device)
        except (RuntimeError, AssertionError) as e:
            sys.exit(f"Device '{requested}' is not usable here ({e}). Try --device cpu.")
        return device
    # A CUDA build on a machine without a GPU still names cuda as its accelerator:
    # check_available asks whether one is actually there.
    accelerator = torch.accelerator.current_accelerator(check_available=True)
    return accelerator if accelerator is not None else torch.device("cpu")


def uses_bfloat16(device: torch.device) -> bool:
    """Whether training computes in bfloat16: on CPUs with AMX tiles, whose matrix units
    make it 1.7x as fast as float32 (measured: benchmarks/train_speed.py). Elsewhere
    float32. The weights stay float32 either way, and so does every evaluation."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    return device.type == "cpu" and amx()


def load_mnist(data_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images (uint8, N x 28 x 28) and labels, downloading them first if absent."""
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


def train_step(
    model: ConvNet,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    others: torch.Tensor | None = None,
    bfloat16: bool = False,
) -> float:
    """One gradient step on a batch of digits `x` labelled `y`, and of non-digits `others`
    (whose loss is the cross-entropy to the even distribution), computed in bfloat16
    autocast if asked (see uses_bfloat16); returns the loss."""
    batch = x if others is None else torch.cat([x, others])
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bfloat16):
        logits = model(batch.contiguous(memory_format=torch.channels_last)).float()
    loss = F.cross_entropy(logits[: len(x)], y)
    if others is not None:
        loss = loss - OUTLIER_WEIGHT * F.log_softmax(logits[len(x) :], dim=1).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


@torch.no_grad()
def eval_logits(model: ConvNet, images: torch.Tensor) -> torch.Tensor:
    """The model's logits for images (float in [0, 1], N x 1 x 28 x 28), in eval mode."""
    model.eval()
    batches = images.split(EVAL_BATCH)
    return torch.cat([model(b.contiguous(memory_format=torch.channels_last)) for b in batches])


def predict(model: ConvNet, images: torch.Tensor) -> torch.Tensor:
    """The digit read in each image."""
    return eval_logits(model, images).argmax(1)


def accuracy(model: ConvNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images classified correctly."""
    return (predict(model, images) == labels).float().mean().item()


def top_probabilities(model: ConvNet, images: torch.Tensor) -> torch.Tensor:
    """Each image's highest softmax probability: the app's confidence that it is a digit."""
    return eval_logits(model, images).softmax(1).amax(1)


def choose_min_confidence(
    model: ConvNet, digits: torch.Tensor, others: torch.Tensor
) -> tuple[float, float]:
    """The top-probability threshold that declines DECLINE_RATE of the (drawn) validation
    digits, and the share of the validation non-digits it declines."""
    threshold = torch.quantile(top_probabilities(model, digits), DECLINE_RATE).item()
    return threshold, (top_probabilities(model, others) < threshold).float().mean().item()


def to_inputs(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N, 28, 28) -> the model's float input (N, 1, 28, 28) in [0, 1], on the device."""
    return images.to(device).unsqueeze(1).float().div_(255)


def train(args: argparse.Namespace) -> None:
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    generator = torch.Generator(device=device).manual_seed(args.seed)

    train_images, train_labels = load_mnist(args.data_dir, train=True)
    test_images, test_labels = load_mnist(args.data_dir, train=False)
    x_train, x_val = (
        to_inputs(train_images[:-VAL_SIZE], device),
        to_inputs(train_images[-VAL_SIZE:], device),
    )
    y_train, y_val = train_labels[:-VAL_SIZE].to(device), train_labels[-VAL_SIZE:].to(device)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]

    model = ConvNet().to(device, memory_format=torch.channels_last)
    n_params = sum(p.numel() for p in model.parameters())
    bfloat16 = uses_bfloat16(device)
    print(
        f"device {device}{' (bfloat16 autocast)' if bfloat16 else ''}  "
        f"parameters {n_params:,}  seed {args.seed}  "
        f"training images {len(x_train):,}"
    )
    started = time.perf_counter()  # training time includes making the pictures and pen paths
    n_others = min(NONDIGITS, len(x_train) // 4)
    others = nondigits(n_others + VAL_SIZE * 3 // 5, seed=args.seed).to(device)
    others, others_val = others[:n_others], others[n_others:]
    x_styles, y_styles = digit_styles(args.seed)
    x_styles, y_styles = x_styles.to(device), y_styles.to(device)
    if args.augment:  # the pen paths that `augment` redraws along
        paths, other_paths = pen_paths(x_train), pen_paths(others)
        style_paths = pen_paths(x_styles)
    pictures = len(x_train) + n_others + len(x_styles)
    made = f", pen paths of {pictures:,} pictures" if args.augment else ""
    print(
        f"{n_others:,} non-digits, {len(x_styles)} digits in other styles{made} "
        f"in {time.perf_counter() - started:.1f}s"
    )

    steps_per_epoch = -(-len(x_train) // args.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=args.lr,
        epochs=args.epochs,
        steps_per_epoch=steps_per_epoch,
        pct_start=0.2,
    )

    history = []  # one report.history_row per epoch
    for epoch in range(1, args.epochs + 1):
        epoch_started = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=generator, device=device)
        running_loss = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{args.epochs}", leave=False)
        for step in bar:
            index = order[step * args.batch_size : (step + 1) * args.batch_size]
            styled = torch.randint(
                len(x_styles), (STYLED_DIGITS_PER_BATCH,), generator=generator, device=device
            )
            x = torch.cat([x_train[index], x_styles[styled]])
            y = torch.cat([y_train[index], y_styles[styled]])
            pick = torch.randint(
                n_others, (NONDIGITS_PER_BATCH,), generator=generator, device=device
            )
            other = others[pick]
            if args.augment:
                x = augment(x, torch.cat([paths[index], style_paths[styled]]), generator)
                other = augment(other, other_paths[pick], generator, NONDIGIT_PEN_STEPS)
            loss = train_step(model, optimizer, x, y, other, bfloat16)
            scheduler.step()
            running_loss = loss if step == 0 else 0.98 * running_loss + 0.02 * loss
            if step % 20 == 0:
                bar.set_postfix(loss=f"{running_loss:.4f}")
        row = report.history_row(
            epoch=epoch,
            loss=running_loss,
            val_accuracy=accuracy(model, x_val, y_val),
            lr=scheduler.get_last_lr()[0],
            seconds=time.perf_counter() - epoch_started,
        )
        history.append(row)
        print(
            f"epoch {epoch:2d}/{args.epochs}  loss {row['loss']:.4f}  "
            f"val {row['val_accuracy']:.2%}  lr {row['lr']:.2e}  {row['seconds']:.1f}s"
        )

    # The threshold is set on validation pictures drawn as the app meets them (redrawn,
    # moved): neither the test set nor the evaluation sets choose anything.
    val_generator = torch.Generator(device=device).manual_seed(args.seed + 1)
    min_confidence, rejected = choose_min_confidence(
        model,
        augment(x_val, pen_paths(x_val), val_generator),
        augment(others_val, pen_paths(others_val), val_generator, NONDIGIT_PEN_STEPS),
    )
    train_seconds = time.perf_counter() - started
    # One pass over the test set gives the accuracy, the confusion matrix and the misread digits.
    predicted = predict(model, to_inputs(test_images, device)).cpu()
    misread = len(report.misread(test_labels, predicted))
    test_acc = 1 - misread / len(test_images)
    print(
        f"test accuracy {test_acc:.2%} ({len(test_images):,} images, {misread:,} misread)  "
        f"training time {train_seconds:.0f}s"
    )
    print(
        f"not a digit below a top probability of {min_confidence:.3f}: declines "
        f"{DECLINE_RATE:.1%} of drawn validation digits, {rejected:.1%} of non-digits"
    )

    metadata = {
        "test_accuracy": f"{test_acc:.4f}",
        "val_accuracy": f"{row['val_accuracy']:.4f}",
        "min_confidence": f"{min_confidence:.4f}",
        "val_nondigits_declined": f"{rejected:.4f}",
        "nondigits": str(n_others),
        "epochs": str(args.epochs),
        "batch_size": str(args.batch_size),
        "lr": str(args.lr),
        "weight_decay": str(args.weight_decay),
        "augment": str(args.augment),
        "seed": str(args.seed),
        "train_images": str(len(x_train)),
        "train_seconds": f"{train_seconds:.0f}",
        "device": str(device),
        "precision": "bfloat16 autocast" if bfloat16 else "float32",
        "torch_version": torch.__version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "history": report.history_csv(history),
    }
    figure = report.draw_report(history, test_images, test_labels, predicted, metadata)
    # Everything is computed before the first write, and the weights go last: an interrupted
    # run leaves the previous weights, each file whole.
    write_atomically(report.report_path(args.out), report.png_bytes(figure))
    write_atomically(report.history_path(args.out), metadata["history"].encode())
    save_weights(model, args.out, metadata)
    print(f"saved {args.out}, its report and history beside it")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule"
    )
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--data-dir", type=Path, default=DATA_DIR, help="where MNIST is, or is downloaded to"
    )
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH, help="weights file to write")
    parser.add_argument(
        "--device", help="force a device (cpu, cuda, mps, xpu...); default: autodetect"
    )
    parser.add_argument(
        "--no-augment", dest="augment", action="store_false", help="train on plain MNIST"
    )
    parser.add_argument(
        "--limit", type=int, default=0, help=argparse.SUPPRESS
    )  # tests: a small subset
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1:
        parser.error("--epochs and --batch-size must be at least 1")
    return args


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # epoch lines show up at once through `| tee`
    try:
        train(parse_args())
    except KeyboardInterrupt:
        sys.exit("\nInterrupted: nothing was saved, the previous weights file is untouched.")
