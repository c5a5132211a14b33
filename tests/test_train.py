"""train.py through its command line, on small real subsets of MNIST."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from matplotlib.ft2font import FT2Font
from safetensors.torch import load_file
from scipy import ndimage

import synth
from augment import LIFT_GAP, MAX_PEN_STEPS, augment, lift_pen, pen_paths, redraw, skeletonize
from mnist import DATA_DIR, MNIST_FILES
from model import WEIGHTS_PATH, Ensemble, load_model, read_metadata
from train import MEMBER_EPOCHS, parse_args, pick_device

ROOT = WEIGHTS_PATH.parent.parent


def run_train(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_autodetect_falls_back_to_cpu_without_accelerator():
    # This machine runs a CUDA build of torch with no GPU: the answer must still be cpu.
    if torch.accelerator.is_available():
        pytest.skip("an accelerator is present here")
    assert pick_device() == torch.device("cpu")


def test_forced_device():
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="not usable here"):
            pick_device("cuda")


def test_augment_keeps_shape_range_and_changes_images(mnist_test):
    images, _ = mnist_test
    x = images[:64].unsqueeze(1).float() / 255
    out = augment(x, pen_paths(x), torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert out.min() >= 0
    # Strongest ink at 1, as preprocessing delivers it, however thin the pen.
    assert torch.allclose(out.amax(dim=(1, 2, 3)), torch.ones(64))
    assert (out - x).abs().mean() > 0.02
    # Ink is neither wiped out nor flooded: every image keeps a plausible amount of it.
    ink = out.flatten(1).sum(1) / x.flatten(1).sum(1)
    assert ink.min() > 0.2 and ink.max() < 5


def test_a_pen_lift_leaves_a_blank_across_the_stroke(mnist_test):
    """Real 1s redrawn with a 2.5 px pen, then lifted: ink is only taken away, all of it
    within one disk of the lift's radius, and most 1s come apart in two strokes (the
    others lose an end)."""
    images, labels = mnist_test
    ones = images[labels == 1][:100].unsqueeze(1).float() / 255
    steps = torch.full((100,), 2)
    pen = 2.5  # px: redraw's pen of 2 steps
    drawn = redraw(pen_paths(ones), steps)
    lifted = lift_pen(drawn, torch.full((100,), pen), torch.Generator().manual_seed(0))
    assert (lifted <= drawn).all()
    removed = ((drawn - lifted) > 0)[:, 0].numpy()
    assert removed.any(axis=(1, 2)).all()
    widest = 2 * (1 + LIFT_GAP[1]) * pen / 2 + 1  # the disk's diameter, and a pixel's edge
    for taken in removed:
        rows, cols = np.nonzero(taken)
        assert np.ptp(rows) + 1 <= widest and np.ptp(cols) + 1 <= widest
    strokes = [ndimage.label(d[0].numpy() > 0.5, structure=np.ones((3, 3)))[1] for d in lifted]
    assert np.mean(np.array(strokes) == 2) > 0.5


def test_skeleton_of_a_thick_bar_is_one_pixel_wide():
    bar = torch.zeros(1, 1, 28, 28)
    bar[..., 10:16, 4:24] = 1.0  # 6 px thick, 20 px long
    path = skeletonize(bar)[0, 0]  # at 56 x 56
    assert path.shape == (56, 56)
    rows_used = path.any(dim=1).nonzero().flatten()
    assert len(rows_used) <= 2  # one pixel wide, give or take the thinning's stair step
    assert 20 <= rows_used.float().mean() <= 32  # along the bar's middle (rows 20-32 at 56)
    assert path.any(dim=0).sum() >= 26  # its length, less about half the width at each end


def test_every_mnist_digit_keeps_a_pen_path_and_pens_grow(mnist_test):
    images, _ = mnist_test
    x = images[:500].unsqueeze(1).float() / 255
    paths = pen_paths(x)
    on_path = (paths == 0).flatten(1).sum(1)
    assert (on_path >= 5).all()
    assert (on_path < x.flatten(1).gt(0.5).sum(1) * 4).all()
    assert torch.equal(paths == 0, skeletonize(x) == 1)
    ink = [redraw(paths, torch.full((500,), steps)).sum() for steps in range(MAX_PEN_STEPS + 1)]
    assert all(a < b for a, b in zip(ink[:-1], ink[1:], strict=True))


@pytest.mark.parametrize(
    ("characters", "fonts"),
    [
        (synth.CHARACTERS, synth.FONT_FILES),
        (synth.SANS_CHARACTERS, synth.SANS_FONT_FILES),
        ("0123456789", synth.DIGIT_FONT_FILES),
    ],
)
def test_every_training_letter_is_in_the_fonts_that_draw_it(characters, fonts):
    # A character missing from a font is drawn as its empty box: a square, not the letter.
    for name in fonts:
        font = FT2Font(str(synth.FONT_DIR / name))
        assert [c for c in characters if not font.get_char_index(ord(c))] == [], name


def test_training_non_digits_are_drawn_and_made_mnist_like():
    pictures = synth.nondigits(200, seed=0)
    assert pictures.shape == (200, 1, 28, 28)
    assert torch.allclose(pictures.amax(dim=(1, 2, 3)), torch.ones(200))
    ink = pictures.flatten(1).gt(0.5).sum(1)
    assert ink.min() >= 10  # every maker left a mark, none a blank picture
    assert len({tuple(p.flatten().tolist()) for p in pictures}) == 200


def test_segmentation_junk_is_made_mnist_like_from_the_digits_given(mnist_test):
    images, labels = mnist_test
    junk = synth.segmentation_junk(images[:500], labels[:500], 90, seed=0)
    assert junk.shape == (90, 1, 28, 28)
    assert torch.allclose(junk.amax(dim=(1, 2, 3)), torch.ones(90))
    # Nearly all different: the same digit may be cut at the same column twice.
    assert len({tuple(p.flatten().tolist()) for p in junk}) >= 85
    # A half digit keeps a meaningful share of the ink, and cuts a meaningful share away.
    digit = images[0].float()
    for side in ("left", "right"):
        half = synth._cut(digit.numpy(), 0.4, side)
        assert 0.4 <= half.sum() / digit.sum() < 0.6
        assert half.sum() < digit.sum() and (half > 0).sum() > 0


def test_marks_are_one_blob_and_never_an_upright_bar():
    pictures = synth.marks(100, seed=0)
    assert pictures.shape == (100, 1, 28, 28)
    assert all(ndimage.label(p[0].numpy() > 0.5)[1] == 1 for p in pictures)
    bar = np.zeros((112, 112), bool)
    bar[16:96, 46:66] = True  # a thick-brushed 1, four times as tall as wide
    tap = np.hypot(*np.mgrid[-56:56, -56:56]) < 20
    assert synth._like_a_one(bar) and not synth._like_a_one(tap)
    assert not synth._like_a_one(bar.T)  # a flat dash is no 1


def test_cli_trains_an_ensemble_saved_as_one_file(tmp_path):
    out = tmp_path / "w.safetensors"
    result = run_train("--members", "2", "--epochs", "1", "--limit", "2000", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "parameters 369,172  members 2" in result.stdout
    meta = read_metadata(out)
    assert meta["members"] == "2" and meta["epochs"] == "1"
    assert float(meta["test_accuracy"]) > 0.7  # chance is 0.10
    for kind in ("nondigits", "junk", "marks"):
        assert 0 <= float(meta[f"val_{kind}_declined"]) <= 1
    model = load_model(out)
    assert isinstance(model, Ensemble) and len(model.members) == 2
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".safetensors"] == ["w.safetensors"]


def test_default_epochs_share_one_training_time_among_the_members():
    assert parse_args([]).epochs * parse_args([]).members == MEMBER_EPOCHS
    assert parse_args(["--members", "3"]).epochs == MEMBER_EPOCHS // 3
    assert parse_args(["--members", "3", "--epochs", "7"]).epochs == 7
    with pytest.raises(SystemExit):
        parse_args(["--members", "0"])


def test_digits_in_other_styles_are_labelled_and_made_mnist_like():
    pictures, labels = synth.digit_styles(seed=0)
    fonts = len(synth.DIGIT_FONT_FILES) * len(synth.DIGIT_FONT_SIZES)
    assert pictures.shape == (10 * fonts + synth.FLAGGED_ONES, 1, 28, 28)
    assert torch.allclose(pictures.amax(dim=(1, 2, 3)), torch.ones(len(pictures)))
    assert torch.bincount(labels).tolist() == [fonts] + [fonts + synth.FLAGGED_ONES] + [fonts] * 8
    typeset = pictures[: 10 * fonts]  # each face and size draws its own pictures
    assert len({tuple(p.flatten().tolist()) for p in typeset}) == len(typeset)


def test_cli_trains_a_loadable_model_that_beats_chance(tmp_path):
    out = tmp_path / "w.safetensors"
    args = ("--epochs", "2", "--limit", "3000", "--out", str(out), "--seed", "3", "--float32")
    result = run_train(*args)
    assert result.returncode == 0, result.stderr
    assert "device cpu" in result.stdout and "bfloat16" not in result.stdout
    assert "parameters 184,586" in result.stdout
    assert "epoch  2/2" in result.stdout and "test accuracy" in result.stdout
    meta = read_metadata(out)
    assert meta["epochs"] == "2" and meta["seed"] == "3" and meta["train_images"] == "3000"
    assert meta["precision"] == "float32"  # --float32, on a CPU with AMX too
    assert float(meta["test_accuracy"]) > 0.85  # chance is 0.10
    load_model(out)


def test_same_seed_same_weights_from_the_picture_cache_that_replaces_older_code(tmp_path):
    data = tmp_path / "data"  # MNIST, and no cached pictures but an older code's
    (data / "MNIST").mkdir(parents=True)
    (data / "MNIST" / "raw").symlink_to(DATA_DIR / "MNIST" / "raw")
    older = data / "pictures" / "seed7-00000000-0123456789abcdef.safetensors"
    older.parent.mkdir()
    older.write_bytes(b"pictures of older code")
    args = ("--epochs", "1", "--limit", "1000", "--seed", "7", "--data-dir", str(data))
    first, second = (
        run_train(*args, "--out", str(tmp_path / f"{name}.safetensors")) for name in ("a", "b")
    )
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "making" in first.stdout and "pen paths of the" in first.stdout
    assert "from the cache" in second.stdout and "making" not in second.stdout
    assert not older.exists() and len(list(older.parent.iterdir())) == 2  # pictures, pen paths
    a, b = (load_file(tmp_path / f"{name}.safetensors") for name in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_offline_without_data_says_where_to_put_it(tmp_path):
    empty = tmp_path / "no-data"
    result = run_train("--data-dir", str(empty), "--out", str(tmp_path / "w.safetensors"))
    assert result.returncode != 0
    assert "Could not download MNIST" in result.stderr
    assert str(empty / "MNIST" / "raw") in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "w.safetensors").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_keeps_previous_weights(tmp_path, sig):
    out = tmp_path / "w.safetensors"
    out.write_bytes(WEIGHTS_PATH.read_bytes())
    before = out.read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "train.py", "--epochs", "50", "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a runner started in the background (`cmd &` in a script) passes
        # SIGINT on as ignored, and Python then installs no KeyboardInterrupt handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout.readline().startswith("device")  # training has begun
    time.sleep(1)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    if sig == signal.SIGINT:
        assert "Interrupted" in stderr and "Traceback" not in stderr
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_damaged_data_says_what_to_do(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / name).write_bytes(b"\x00\x00\x08\x03 not really MNIST")
    result = run_train("--data-dir", str(tmp_path), "--out", str(tmp_path / "w.safetensors"))
    assert result.returncode != 0
    assert f"Could not read MNIST from {raw}/" in result.stderr
    assert "Traceback" not in result.stderr
