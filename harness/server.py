"""Run app.py as its own server process on a free loopback port, for tests and benchmarks.

The server is started exactly as a Space starts it (`python app.py`, the address from
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT) and is always stopped, even when a test fails.
Benchmarks read its CPU time and memory from /proc (Linux).
"""

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 90  # importing torch and gradio on a busy 2-core machine
STOP_TIMEOUT_S = 10
_processes: dict[str, subprocess.Popen] = {}  # each running server's process, by its URL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(
    command: list[str] | None = None,
    log_path: Path | None = None,
    environ: dict[str, str] | None = None,
):
    """Yield the URL of a running `python app.py` (or `command`), and stop it afterwards.
    Its corrections store is a fresh file in a temporary folder unless `environ` (added to
    the server's environment) names one in CORRECTIONS_DB."""
    port = free_port()
    scratch = tempfile.TemporaryDirectory()
    env = os.environ | {
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "CORRECTIONS_DB": str(Path(scratch.name) / "corrections.sqlite3"),
    }
    env |= environ or {}
    log = open(log_path or os.devnull, "w")  # noqa: SIM115 (closed below, after the process)
    process = subprocess.Popen(
        command or [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}/"
    _processes[url] = process
    try:
        _wait_until_up(url, process)
        yield url
    finally:
        del _processes[url]
        process.terminate()  # nothing to do for one already killed (a test's SIGKILL)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        scratch.cleanup()


def _wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url + "config", timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"the server did not answer at {url} within {START_TIMEOUT_S} s")


def server_process(url: str) -> subprocess.Popen:
    """The process of the server that serve() runs at `url` (to kill it, or read its pid)."""
    return _processes[url]


def server_pid() -> int:
    """The process id of the server serve() started: this process's newest child (other
    people's servers may run on the same machine)."""
    found = subprocess.run(["pgrep", "-n", "-P", str(os.getpid())], capture_output=True, text=True)
    return int(found.stdout.split()[0])


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far, user and system, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def rss_mb(pid: int) -> float:
    """The process's resident memory (RSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
