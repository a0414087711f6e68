"""data/generate_dataset/generate_train.py end to end."""

import os
import subprocess
import sys

import h5py
import pytest
from helpers import ROOT

SCRIPT = os.path.join(ROOT, "data", "generate_dataset", "generate_train.py")


def run_script(*flags):
    # As after run.sh, which installs the project: vdsr_tf importable from anywhere.
    environment = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, SCRIPT, *flags], capture_output=True, text=True, timeout=300, env=environment
    )


def test_writes_patches_and_reports_the_unreadable_image(tiny_data_dir, tmp_path):
    output = tmp_path / "train.h5"
    result = run_script(f"--data_dir={tiny_data_dir}", "--train_sets=T91", f"--output={output}", "--patch_size=21")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "d_corrupt.png" in result.stderr and "1 unreadable skipped" in result.stderr
    with h5py.File(output, "r") as file:
        assert file["data"].shape[1:] == (21, 21, 1) and file.attrs["images"] == 3


def test_max_images(tiny_data_dir, tmp_path):
    output = tmp_path / "train.h5"
    result = run_script(f"--data_dir={tiny_data_dir}", "--train_sets=T91", f"--output={output}", "--max_images=1")
    assert result.returncode == 0, result.stderr[-2000:]
    with h5py.File(output, "r") as file:
        assert file.attrs["images"] == 1


def test_missing_training_folder(tiny_data_dir, tmp_path):
    result = run_script(f"--data_dir={tiny_data_dir}", f"--output={tmp_path / 'x.h5'}")  # no train/BSD200
    assert result.returncode != 0
    assert "--data_dir: no training folder" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "x.h5").exists()


def test_empty_training_folder(tmp_path):
    (tmp_path / "train" / "T91").mkdir(parents=True)
    result = run_script(f"--data_dir={tmp_path}", "--train_sets=T91", f"--output={tmp_path / 'x.h5'}")
    assert result.returncode != 0 and "no images in T91" in result.stderr.strip().splitlines()[-1]


def test_bad_setting(tiny_data_dir, tmp_path):
    result = run_script(
        f"--data_dir={tiny_data_dir}", "--train_sets=T91", "--rotations=45", f"--output={tmp_path / 'x.h5'}"
    )
    assert result.returncode != 0 and "rotations must be multiples of 90" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--scales=2,x", "error: --scales must be whole numbers, got 2,x"),
        ("--stride=0", "error: --stride must be positive, got 0"),
        ("--scales=2,256", "error: --scales must be integers from 2 to 255, got (2, 256)"),
        ("--workers=0", "error: --workers must be at least 1, got 0"),
        ("--seed=-1", "error: --seed must be at least 0, got -1"),
        ("--max_images=-1", "error: --max_images must be at least 0, got -1"),
        (f"--seed={2**63}", f"error: --seed must be under 2**63, got {2**63}"),
    ],
)
def test_a_bad_number_names_its_flag(tiny_data_dir, tmp_path, flag, message):
    result = run_script(f"--data_dir={tiny_data_dir}", "--train_sets=T91", flag, f"--output={tmp_path / 'x.h5'}")
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == message
    assert not (tmp_path / "x.h5").exists()


def test_an_output_in_a_folder_that_cannot_exist_is_one_line_error(tiny_data_dir, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    result = run_script(f"--data_dir={tiny_data_dir}", "--train_sets=T91", f"--output={blocker / 'train.h5'}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"error: --output: {blocker} is a file, not a folder"  # before the generation, not after
    assert "images" not in result.stderr  # no progress bar: nothing was generated
    empty = run_script(f"--data_dir={tiny_data_dir}", "--train_sets=T91", "--output=")
    assert empty.stderr.strip().splitlines()[-1] == "error: --output: give a file name; it is empty"


def test_an_existing_output_is_replaced_only_with_overwrite(tiny_data_dir, tmp_path):
    output = tmp_path / "train.h5"
    output.write_bytes(b"a training run's patches")
    flags = (f"--data_dir={tiny_data_dir}", "--train_sets=T91", "--patch_size=21", f"--output={output}")
    result = run_script(*flags)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and last == f"error: --output: {output} exists (use --overwrite to replace it)"
    assert output.read_bytes() == b"a training run's patches"
    assert run_script(*flags, "--overwrite").returncode == 0
    with h5py.File(output, "r") as file:
        assert file.attrs["images"] == 3
    result = run_script(*flags[:-1], f"--output={tmp_path}")
    assert result.returncode == 1 and f"--output: {tmp_path} is a folder" in result.stderr.strip().splitlines()[-1]
