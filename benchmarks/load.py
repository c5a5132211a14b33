"""How the server holds up under load: concurrent gradio_client clients on /predict.

    flock /tmp/cpu.lock .venv/bin/python -m benchmarks.load [--concurrency 1 2 4]

Each setting starts `python app.py` with GRADIO_DEFAULT_CONCURRENCY_LIMIT set, then
16 clients (threads, each with its own Client and its own drawn MNIST digit) send 25
requests each, all at once. Reports errors, latency p50/p99, throughput, and the CPU the
server and the clients used; app.py's CONCURRENCY default is the best setting here.

The clients share the 2 cores with the server, so they are run twice: as they come, and
with ssl_verify=False (no TLS on loopback either way), which saves them building an SSL
context per HTTP request, about 75 ms of CPU per call (see round_trip.py).
"""

import argparse
import os
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file

from harness.drawn import draw
from harness.server import cpu_seconds, serve, server_pid
from mnist import DATA_DIR, load_mnist

CLIENTS = {"Client(url)": {}, "Client(url, ssl_verify=False)": {"ssl_verify": False}}


def run_clients(
    url: str, drawings: list[Path], requests: int, options: dict
) -> tuple[list[float], int, int, float]:
    """Latencies (ms) of all requests, the number that failed (no answer), the number answered
    with another reading than the drawing's digit, and the wall time (s)."""
    clients = [Client(url, verbose=False, **options) for _ in drawings]
    latencies, errors, misread, lock = [], [0], [0], threading.Lock()
    start_line = threading.Barrier(len(clients) + 1)

    def work(client: Client, drawing: Path, label: str) -> None:
        sketch = {"background": None, "layers": [], "composite": handle_file(str(drawing))}
        start_line.wait()
        for _ in range(requests):
            start = time.perf_counter()
            try:
                answer = client.predict(sketch, api_name="/predict")[0]  # the Label
                failed, wrong = False, answer["label"] != label
            except Exception:
                failed, wrong = True, False
            with lock:
                latencies.append((time.perf_counter() - start) * 1e3)
                errors[0] += failed
                misread[0] += wrong

    threads = [
        threading.Thread(target=work, args=(client, path, path.stem.split("_")[1]))
        for client, path in zip(clients, drawings, strict=True)
    ]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return latencies, errors[0], misread[0], time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=25)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    images, labels = load_mnist(DATA_DIR, train=False)
    folder = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    drawings = []
    for i in range(args.clients):  # the first test digits, which the model reads right
        path = folder / f"{i}_{int(labels[i])}.png"
        draw(images[i].numpy(), rng, 0.1, canvas_size=(280, 280)).save(path)
        drawings.append(path)

    total = args.clients * args.requests
    print(f"{args.clients} clients x {args.requests} requests to /predict (280x280 drawings)")
    for name, options in CLIENTS.items():
        for concurrency in args.concurrency:
            os.environ["GRADIO_DEFAULT_CONCURRENCY_LIMIT"] = str(concurrency)
            with serve() as url:
                server = server_pid()
                cpu_before = cpu_seconds(server), _own_cpu_seconds()
                latencies, errors, misread, seconds = run_clients(
                    url, drawings, args.requests, options
                )
                server_cpu = cpu_seconds(server) - cpu_before[0]
                client_cpu = _own_cpu_seconds() - cpu_before[1]
            print(
                f"  {name}, concurrency {concurrency}: {errors} errors of {total} "
                f"({misread} answered, but not with the drawing's digit), "
                f"p50 {statistics.median(latencies):5.0f} ms, "
                f"p99 {np.percentile(latencies, 99):5.0f} ms, {total / seconds:5.1f} requests/s; "
                f"CPU per request: server {server_cpu / total * 1e3:4.1f} ms, "
                f"clients {client_cpu / total * 1e3:4.1f} ms"
            )


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
