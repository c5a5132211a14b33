"""What an ensemble of K ConvNets costs, in training and in reading, for K = 1, 3 and 5.

    flock /tmp/cpu.lock .venv/bin/python -m benchmarks.ensemble_cost [--steps 30]

Training: one step of every member on the same augmented batch (train.batch, as train.py
draws it: 136 digits, 48 non-digits), members one after the other as train.py runs them,
and the same members stacked into one module and vectorised with torch.func (vmap over
stack_module_state), the alternative that train.py does not use. Reading: the model on a
batch of 4 glyphs (a 4-digit number) and of 30 (the candidates a segmentation search
reads), one torch thread as in the server. Medians; the machine is noisy.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state

from model import IMAGE_SIZE, ConvNet, build_model
from train import (
    OUTLIER_WEIGHT,
    batch,
    load_splits,
    make_pictures,
    parse_args,
    synthesized,
    train_step,
    uses_bfloat16,
)

MEMBERS = (1, 3, 5)
GLYPHS = (4, 30)


def sequential_step_ms(members: int, batches: list, steps: int) -> float:
    nets = [ConvNet().to(memory_format=torch.channels_last).train() for _ in range(members)]
    optimizers = [torch.optim.AdamW(n.parameters(), lr=1e-3) for n in nets]
    bfloat16 = uses_bfloat16(torch.device("cpu"))

    def step(i: int) -> None:
        x, y, others = batches[i % len(batches)]
        for net, optimizer in zip(nets, optimizers, strict=True):
            train_step(net, optimizer, x, y, others, bfloat16)

    return _median_ms(step, steps)


def vmapped_step_ms(members: int, batches: list, steps: int) -> float:
    params, buffers = stack_module_state([ConvNet() for _ in range(members)])
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    optimizer = torch.optim.AdamW(params.values(), lr=1e-3)
    skeleton = ConvNet().to("meta")

    def one(p, b, x):
        return functional_call(skeleton, (p, b), (x,))

    forward = torch.vmap(one, in_dims=(0, 0, None), randomness="different")

    def step(i: int) -> None:
        x, y, others = batches[i % len(batches)]
        logits = forward(params, buffers, torch.cat([x, others]))
        loss = sum(
            F.cross_entropy(m[: len(x)], y)
            - OUTLIER_WEIGHT * F.log_softmax(m[len(x) :], dim=1).mean()
            for m in logits
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return _median_ms(step, steps)


def reading_ms(members: int, glyphs: int, calls: int = 300) -> float:
    model = build_model(members).eval()
    x = torch.rand(glyphs, 1, IMAGE_SIZE, IMAGE_SIZE)
    with torch.inference_mode():
        return _median_ms(lambda _: model(x), calls)


def _median_ms(function, calls: int, warm_up: int = 3) -> float:
    for i in range(warm_up):
        function(i)
    times = []
    for i in range(calls):
        started = time.perf_counter()
        function(i)
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps per measurement")
    args = parser.parse_args()
    run = parse_args(["--limit", "4096"])
    mnist = load_splits(run)
    data = make_pictures(run, mnist, synthesized(run, mnist), torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    batches = [batch(data, torch.randint(4096, (128,), generator=generator), generator, True)]
    batches += [batch(data, torch.randint(4096, (128,), generator=generator), generator, True)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads for training")
    for members in MEMBERS:
        print(
            f"K={members}: training step {sequential_step_ms(members, batches, args.steps):6.1f}"
            f" ms one member after another, {vmapped_step_ms(members, batches, args.steps):6.1f}"
            " ms vectorised (vmap)"
        )
    torch.set_num_threads(1)
    for members in MEMBERS:
        print(
            f"K={members}: reading, one thread: "
            + ", ".join(f"{g} glyphs {reading_ms(members, g):5.2f} ms" for g in GLYPHS)
        )


if __name__ == "__main__":
    main()
