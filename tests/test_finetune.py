"""The fine-tune on visitors' corrections (finetune.py), end to end through train.py's command
line, on real SQLite stores of drawings in a habit the shipped reader misreads (slashed
zeros: harness.styles), with real MNIST and the shipped weights.

The run that writes weights is the real one, at the fine-tune's defaults, on all of MNIST
(about a minute on a 2-core CPU with AMX): on a subset (the hidden --limit) the synthesised
outliers are a subset too, the fine-tune forgets some of the others, and the guard rightly
refuses (validation non-digits declined 1.3 points fewer with --limit 20000). The runs that
refuse train on the first LIMIT digits: they stop at the guard whatever they learnt.
"""

import subprocess
import sys
from pathlib import Path

import pytest

import corrections
import finetune
from finetune import Figures
from harness.styles import Styled, fill_store, styled_drawings
from mnist import DATA_DIR, load_mnist
from model import WEIGHTS_PATH, load_model, read_metadata

ROOT = Path(__file__).resolve().parent.parent
DRAWINGS = 80  # accepted corrections in the store: 16 held out
LIMIT = "2000"  # MNIST training digits of the runs that refuse (tests/test_report.py's too)


def run_finetune(db: Path, out: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", "--corrections", str(db), "--out", str(out), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def drawings() -> list[Styled]:
    images, labels = load_mnist(DATA_DIR, train=True)
    return list(styled_drawings(images.numpy(), labels.numpy(), DRAWINGS, seed=1))


@pytest.fixture(scope="module")
def store(tmp_path_factory, drawings) -> Path:
    db = tmp_path_factory.mktemp("store") / "corrections.sqlite3"
    fill_store(db, drawings)
    return db


def test_the_habit_is_misread_by_the_shipped_weights(store):
    opened = corrections.Store.open(store)
    rows = opened.accepted()
    opened.close()
    assert len(rows) == DRAWINGS
    assert all(row.status == "accepted" and row.model for row in rows)
    misread = sum(row.read != row.label for row in rows)
    assert misread > 0.6 * DRAWINGS  # most of them: a habit the reader doesn't know


def test_finetune_learns_the_habit_and_writes_weights(store, tmp_path):
    out = tmp_path / "finetuned.safetensors"
    result = run_finetune(store, out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "held-out corrections read right" in result.stdout
    header = read_metadata(out)
    assert set(finetune.HEADER_KEYS) <= header.keys()
    assert float(header["corrections_accuracy"]) > float(header["from_corrections_accuracy"])
    assert int(header["corrections_held_out"]) == DRAWINGS // 5
    assert header["corrections_from"] == corrections.model_sha256(WEIGHTS_PATH)
    assert header["corrections_rows"].endswith(f"(ids 1-{DRAWINGS})")
    assert 0 < int(header["corrections"]) <= DRAWINGS - DRAWINGS // 5
    assert header["epochs"] == str(finetune.EPOCHS) and header["lr"] == str(finetune.LR)
    assert out.with_suffix(".report.png").exists() and out.with_suffix(".history.csv").exists()
    history = header["history"].splitlines()
    assert history[1].startswith("0,")  # epoch 0: the --from weights
    load_model(out)  # the app can load it


def test_guard_refuses_weights_that_read_no_better_unless_forced(store, tmp_path):
    # A learning rate too small to change anything: the held-out corrections read as before.
    out = tmp_path / "unchanged.safetensors"
    flags = ("--limit", LIMIT, "--epochs", "1", "--lr", "1e-12")
    result = run_finetune(store, out, *flags)
    assert result.returncode == finetune.REFUSED, result.stdout[-3000:] + result.stderr[-3000:]
    assert "held-out corrections read no better" in result.stderr
    assert "Nothing written" in result.stdout
    assert not out.exists() and not out.with_suffix(".report.png").exists()
    forced = run_finetune(store, out, *flags, "--force")
    assert forced.returncode == 0 and "anyway (--force)" in forced.stdout
    header = read_metadata(out)
    assert header["corrections_accuracy"] == header["from_corrections_accuracy"]


def test_empty_store_and_too_few_are_refused(tmp_path, drawings):
    empty = tmp_path / "empty.sqlite3"
    corrections.Store.open(empty).close()
    result = run_finetune(empty, tmp_path / "w.safetensors")
    assert result.returncode == finetune.REFUSED
    assert "no accepted corrections" in result.stderr
    few = tmp_path / "few.sqlite3"
    fill_store(few, drawings[:4])
    result = run_finetune(few, tmp_path / "w.safetensors")
    assert result.returncode == finetune.REFUSED
    assert "at least 5" in result.stderr
    assert not (tmp_path / "w.safetensors").exists()


@pytest.mark.parametrize("make", ["missing", "not a database"])
def test_a_store_that_cannot_be_read_is_said_plainly(tmp_path, make):
    db = tmp_path / "corrections.sqlite3"
    if make == "not a database":
        db.write_bytes(b"this is no SQLite file" * 100)
    result = run_finetune(db, tmp_path / "w.safetensors")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and str(db) in result.stderr
    assert not db.exists() or make != "missing"  # reading never creates a store


def test_guard_names_each_failed_condition():
    before = Figures(3, 16, 0.9938, 0.9864, 0.9443, 0.9946, 0.3)
    # At the allowances exactly: 0.1 point of MNIST validation, 1 of the others, and better.
    assert finetune.guard(before, Figures(4, 16, 0.9928, 0.9764, 0.9343, 0.99, 0.2)) == []
    failed = finetune.guard(before, Figures(3, 16, 0.9926, 0.9700, 0.9300, 0.99, 0.2))
    assert len(failed) == 4
    assert [f.split(" ")[0] for f in failed] == ["the", "MNIST", "drawn", "non-digits"]


def test_hold_out_is_seeded_by_picture():
    rows = [finetune.Correction(i, bytes([i % 7]), "0") for i in range(1, 36)]
    kept, held = finetune.hold_out(rows, seed=1)
    assert len(kept) + len(held) == 35 and len(held) >= 7
    held_pictures = {row.picture for row in held}
    assert not held_pictures & {row.picture for row in kept}  # copies stay on one side
    assert finetune.hold_out(rows, seed=1) == (kept, held)
