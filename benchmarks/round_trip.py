"""How long a program waits for an answer: gradio_client round trips to a local server.

    flock /tmp/cpu.lock .venv/bin/python -m benchmarks.round_trip

Starts `python app.py` on loopback, then times client.predict on both endpoints with a
drawn MNIST test digit (upload of the file included), one call at a time. The `None`
call does no image work at all: it is the fixed cost of the client and Gradio's queue.

Two clients side by side: gradio_client as it comes, and with ssl_verify=False. On plain
http there is no TLS either way, but the default client builds a certificate-verifying
SSL context (loading the CA bundle) for each of its HTTP requests: most of its time.
"""

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file

from harness.drawn import draw
from harness.server import serve
from mnist import DATA_DIR, load_mnist

CALLS = 60
WARM_UP = 5
CLIENTS = {"Client(url)": {}, "Client(url, ssl_verify=False)": {"ssl_verify": False}}


def p50_ms(call) -> tuple[float, float]:
    for _ in range(WARM_UP):
        call()
    times = []
    for _ in range(CALLS):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), float(np.percentile(times, 90))


def report(client: Client, drawing: Path) -> None:
    sketch = {"background": None, "layers": [], "composite": handle_file(str(drawing))}
    calls = {
        "/predict, 280x280 drawing": lambda: client.predict(sketch, api_name="/predict"),
        "/classify, same file": lambda: client.predict(
            handle_file(str(drawing)), api_name="/classify"
        ),
        "/predict, None (client + queue only)": lambda: client.predict(None, api_name="/predict"),
    }
    for name, call in calls.items():
        p50, p90 = p50_ms(call)
        print(f"  {name:<40} p50 {p50:6.1f} ms   p90 {p90:6.1f} ms")


def main() -> None:
    images, _ = load_mnist(DATA_DIR, train=False)
    drawing = Path(tempfile.mkdtemp()) / "drawing.png"
    draw(images[0].numpy(), np.random.default_rng(0), 0.1, canvas_size=(280, 280)).save(drawing)
    with serve() as url:
        for name, options in CLIENTS.items():
            print(f"{name}: round trips on loopback, {CALLS} calls each, one at a time")
            report(Client(url, verbose=False, **options), drawing)


if __name__ == "__main__":
    main()
