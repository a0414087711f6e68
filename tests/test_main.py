"""The command line, end to end: errors are one line, name the flag or file, exit non-zero, write nothing."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT, as_in_a_terminal, last_line, run_main

from vdsr_tf.data import PatchSettings, generate_training_h5
from vdsr_tf.images import list_images
from vdsr_tf.model import build_vdsr, read_weights, save_weights


def test_evaluation_writes_table_and_json(tiny_data_dir, checkpoint_dir, tmp_path):
    results = tmp_path / "results.json"
    result = run_main(
        f"--checkpoint_dir={checkpoint_dir}",
        f"--data_dir={tiny_data_dir}",
        "--test_datasets=Set5",
        "--scales=2,3",
        f"--results_json={results}",
        f"--save_images={tmp_path / 'sr'}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| Set5 | x2 | 2 |" in result.stdout and "| Set5 | x3 | 2 |" in result.stdout
    rows = json.loads(results.read_text())
    assert [(row["dataset"], row["scale"], row["images"]) for row in rows] == [("Set5", 2, 2), ("Set5", 3, 2)]
    assert set(rows[0]) == {"dataset", "scale", "images", "psnr_bicubic", "ssim_bicubic", "psnr", "ssim", "seconds"}
    assert sorted(os.listdir(tmp_path / "sr" / "Set5")) == ["x_x2.png", "x_x3.png", "y_x2.png", "y_x3.png"]
    assert f"wrote the super-resolved Y images into {tmp_path / 'sr'}" in result.stderr
    assert f"wrote {results}" in result.stderr


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--scales=1"], "--scales: every scale must be an integer of at least 2"),
        (["--scales=two"], "--scales: expected integers"),
        (["--test_datasets=Set5,Nowhere"], "'Nowhere'"),
        (["--depth=20"], "has depth 3, but --depth=20"),
    ],
)
def test_evaluation_flag_errors(tiny_data_dir, checkpoint_dir, tmp_path, flags, message):
    results = tmp_path / "results.json"
    result = run_main(
        f"--checkpoint_dir={checkpoint_dir}", f"--data_dir={tiny_data_dir}", f"--results_json={results}", *flags
    )
    assert result.returncode != 0
    assert message in last_line(result) and last_line(result).startswith("error:")
    assert not results.exists()


def test_a_missing_dataset_is_said_before_the_weights_load(tiny_data_dir, tmp_path):
    result = run_main(f"--checkpoint_dir={tmp_path / 'none'}", f"--data_dir={tiny_data_dir}", "--test_datasets=Nowhere")
    assert result.returncode == 1 and last_line(result).startswith("error: --test_datasets: no folder")


def test_missing_checkpoint_says_how_to_get_one(tiny_data_dir, tmp_path):
    result = run_main(f"--checkpoint_dir={tmp_path / 'none'}", f"--data_dir={tiny_data_dir}")
    assert result.returncode != 0
    assert "no checkpoint" in last_line(result) and "--import_matconvnet" in last_line(result)


def test_missing_data_dir(checkpoint_dir, tmp_path):
    result = run_main(f"--checkpoint_dir={checkpoint_dir}", f"--data_dir={tmp_path / 'nothing'}")
    assert result.returncode != 0 and last_line(result) == (
        f"error: --data_dir: no data folder {tmp_path / 'nothing'}; put the datasets there (README, 'Data and weights')"
    )  # no advice to pass the flag that was passed


def test_corrupt_test_image_is_named_and_nothing_written(tiny_data_dir, checkpoint_dir, tmp_path):
    (tiny_data_dir / "test" / "Set5" / "z.png").write_bytes(b"\x89PNG broken")
    results = tmp_path / "results.json"
    result = run_main(
        f"--checkpoint_dir={checkpoint_dir}",
        f"--data_dir={tiny_data_dir}",
        "--test_datasets=Set5",
        f"--results_json={results}",
    )
    assert result.returncode != 0 and "z.png: not a readable image" in last_line(result)
    assert not results.exists()


def test_import_of_a_non_vdsr_mat_writes_nothing(tmp_path):
    bad = tmp_path / "bad.mat"
    bad.write_text("not a mat file")
    result = run_main(f"--import_matconvnet={bad}", f"--checkpoint_dir={tmp_path / 'ck'}")
    assert result.returncode != 0 and "bad.mat" in last_line(result)
    assert not (tmp_path / "ck" / "vdsr.h5").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--train_h5=/nonexistent/train.h5"], "--train_h5: no file /nonexistent/train.h5"),
        (["--batch_size=0"], "--batch_size must be at least 1"),
        (["--grad_clip=0"], "--grad_clip must be a positive number"),
        (["--lr=inf"], "--lr must be a positive number, got inf"),
        (["--weight_decay=nan"], "--weight_decay must be a number of at least 0, got nan"),
        (["--max_steps=-1"], "--max_steps must be at least 0, got -1"),
    ],
)
def test_training_flag_errors(tmp_path, flags, message):
    result = run_main("--is_train=True", f"--checkpoint_dir={tmp_path / 'ck'}", *flags)
    assert result.returncode != 0 and message in last_line(result)
    assert not (tmp_path / "ck").exists()


def test_default_datasets_are_the_paper_sets_present(tiny_data_dir, checkpoint_dir):
    # tiny_data_dir holds only test/Set5 (and no Set14, B100, Urban100).
    result = run_main(f"--checkpoint_dir={checkpoint_dir}", f"--data_dir={tiny_data_dir}", "--scales=4")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| Set5 | x4 | 2 |" in result.stdout and "Set14" not in result.stdout


@pytest.fixture
def tiny_training_flags(tiny_data_dir, tmp_path):
    """main.py flags for a 3-layer, 8-filter training run on patches of the tiny images, into tmp_path/ck."""
    train_h5 = str(tmp_path / "train.h5")
    paths = list_images(str(tiny_data_dir / "train" / "T91"))
    generate_training_h5(paths, train_h5, settings=PatchSettings(patch_size=21, stride=10), seed=0, workers=1)
    return [
        "--is_train=True", f"--train_h5={train_h5}", f"--data_dir={tiny_data_dir}",
        f"--checkpoint_dir={tmp_path / 'ck'}", f"--tensorboard_dir={tmp_path / 'logs'}",
        "--depth=3", "--width=8", "--batch_size=8",
    ]  # fmt: skip


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_sigterm_ctrl_c_or_a_closed_terminal_stops_training_after_the_step_with_a_saved_state(
    tiny_training_flags, tmp_path, signum
):
    log = open(tmp_path / "log.txt", "w")
    process = subprocess.Popen(
        [sys.executable, "main.py", *tiny_training_flags, "--steps_per_epoch=100000"],
        cwd=ROOT,
        stdout=log,
        stderr=log,
        preexec_fn=as_in_a_terminal,
    )
    deadline = time.time() + 120
    while "| 3/100000" not in (tmp_path / "log.txt").read_text() and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signum)
    assert process.wait(timeout=60) == 128 + signum, (tmp_path / "log.txt").read_text()[-2000:]
    log_text = (tmp_path / "log.txt").read_text()
    assert "interrupted at step" not in log_text  # the step was finished, not cut
    assert f"stopped by {signal.Signals(signum).name} at step " in log_text and "Traceback" not in log_text
    _, attributes = read_weights(str(tmp_path / "ck" / "vdsr.h5"))
    record = json.loads((tmp_path / "ck" / "training_record.json").read_text())
    assert attributes["step"] == record["steps"] >= 3
    assert os.path.isfile(tmp_path / "ck" / "state" / "checkpoint")


def test_kill_9_leaves_a_resumable_state(tiny_training_flags, tmp_path):
    flags = [sys.executable, "main.py", *tiny_training_flags, "--steps_per_epoch=2"]
    with open(tmp_path / "log.txt", "w") as log:
        process = subprocess.Popen(flags + ["--epochs=1000"], cwd=ROOT, stdout=log, stderr=log)
        deadline = time.time() + 120
        # Saves happen at every epoch end (every 2 steps): kill while they keep coming.
        while not (tmp_path / "ck" / "state" / "checkpoint").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        process.kill()
        process.wait()
    _, before = read_weights(str(tmp_path / "ck" / "vdsr.h5"))
    result = subprocess.run(flags + ["--epochs=1"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    # --epochs=1 ends the schedule at step 2, already passed: the run restores and stops at once.
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed from" in result.stderr
    _, after = read_weights(str(tmp_path / "ck" / "vdsr.h5"))
    assert after["step"] >= before["step"] >= 2


@pytest.mark.parametrize("flagfile", ["paper.flags", "smoke.flags", "short_run_x2.flags"])
def test_flagfiles_train_with_the_papers_optimiser(flagfile, tiny_training_flags, tmp_path):
    result = run_main(f"--flagfile=configs/{flagfile}", *tiny_training_flags, "--steps_per_epoch=1", "--max_steps=1")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "ck" / "training_record.json").read_text())
    assert record["steps"] == 1
    assert record["learning_rate"] == [{"from_step": 0, "lr": 0.1, "optimizer": "sgd"}]
    assert record["config"]["grad_clip"] == 1e-4


def test_adam_continuation_flagfile_carries_on_from_given_weights(tiny_training_flags, tmp_path):
    start = tmp_path / "start" / "vdsr.h5"
    save_weights(build_vdsr(depth=3, width=8, seed=0), str(start), residual=True, metadata={"step": 4})
    result = run_main(
        "--flagfile=configs/adam_continuation.flags",
        *tiny_training_flags,
        f"--init_weights={start}",
        "--steps_per_epoch=2",
        "--max_steps=2",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "ck" / "training_record.json").read_text())
    assert record["steps"] == 6
    assert record["learning_rate"] == [{"from_step": 4, "lr": 1e-4, "optimizer": "adam"}]


def test_kept_epoch_weights_average_into_a_new_checkpoint(tiny_training_flags, tmp_path):
    result = run_main(*tiny_training_flags, "--keep_epoch_weights", "--steps_per_epoch=2", "--epochs=3")
    assert result.returncode == 0, result.stderr[-2000:]
    kept = sorted(os.listdir(tmp_path / "ck" / "weights"))
    assert kept == ["vdsr_000002.h5", "vdsr_000004.h5", "vdsr_000006.h5"]
    averaged_dir = tmp_path / "averaged"
    result = run_main(f"--average_weights={tmp_path / 'ck' / 'weights' / '*.h5'}", f"--checkpoint_dir={averaged_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    mean, attributes = read_weights(str(averaged_dir / "vdsr.h5"))
    assert attributes["step"] == 6 and list(attributes["averaged_steps"]) == [2, 4, 6]
    assert attributes["source"] == "trained by vdsr_tf.train"
    kernels = [read_weights(str(tmp_path / "ck" / "weights" / name))[0][0][0] for name in kept]
    assert abs(mean[0][0] - sum(kernels) / 3).max() < 1e-6
    # The newest kept weights are those of the run's own vdsr.h5.
    assert (read_weights(str(tmp_path / "ck" / "vdsr.h5"))[0][0][0] == kernels[-1]).all()


@pytest.mark.parametrize("flag", ["--average_weights", "--import_matconvnet"])
def test_writing_weights_never_replaces_a_checkpoint_unasked(flag, checkpoint_dir):
    before = (checkpoint_dir / "vdsr.h5").read_bytes()
    result = run_main(f"{flag}={checkpoint_dir / 'vdsr.h5'}", f"--checkpoint_dir={checkpoint_dir}")
    assert result.returncode != 0 and "vdsr.h5 exists (use --overwrite" in last_line(result)
    assert (checkpoint_dir / "vdsr.h5").read_bytes() == before


@pytest.mark.parametrize("flag", ["--average_weights", "--import_matconvnet", "--export_saved_model", "--input"])
def test_an_empty_mode_flag_is_an_error_not_an_evaluation(flag, tmp_path):
    # An empty shell variable in `--average_weights=$FILES` used to fall through to a full evaluation.
    result = run_main(f"{flag}=", f"--checkpoint_dir={tmp_path / 'out'}")
    assert result.returncode != 0 and last_line(result).startswith(f"error: {flag}: give ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "flags",
    [["--is_train=True", "--input=photo.png"], ["--average_weights=a.h5", "--export_saved_model=saved"]],
)
def test_two_modes_at_once_are_an_error(flags, tmp_path):
    # --is_train=True with --input used to enlarge the images and train nothing, without a word.
    result = run_main(*flags, f"--checkpoint_dir={tmp_path / 'out'}")
    assert result.returncode != 0 and last_line(result).endswith(": give one mode at a time")
    assert flags[0].split("=")[0] in last_line(result) and flags[1].split("=")[0] in last_line(result)
    assert not (tmp_path / "out").exists()


def test_averaging_a_glob_that_matches_nothing_writes_nothing(tmp_path):
    result = run_main(f"--average_weights={tmp_path / 'none' / '*.h5'}", f"--checkpoint_dir={tmp_path / 'out'}")
    assert result.returncode != 0 and "--average_weights: no file matches" in last_line(result)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--results_json", "--save_images"])
def test_an_unwritable_evaluation_output_is_refused_before_the_work(flag, tiny_data_dir, checkpoint_dir, tmp_path):
    # --results_json naming a folder used to fail after the whole evaluation, losing the results;
    # --save_images naming a file was a NotADirectoryError traceback.
    wrong = tmp_path / "wrong"
    wrong.mkdir() if flag == "--results_json" else wrong.write_text("x")
    result = run_main(f"--checkpoint_dir={checkpoint_dir}", f"--data_dir={tiny_data_dir}", f"{flag}={wrong}")
    assert result.returncode != 0 and last_line(result).startswith(f"error: {flag}: ")
    assert "Traceback" not in result.stderr and "| Set5 |" not in result.stdout


def test_importing_a_text_file_as_matconvnet_weights_is_one_line(tmp_path):
    text = tmp_path / "weights.mat"
    text.write_text("not a MATLAB file\n")
    result = run_main(f"--import_matconvnet={text}", f"--checkpoint_dir={tmp_path / 'out'}")
    assert result.returncode != 0 and f"error: {text}: not a readable .mat file" in last_line(result)
    assert "Traceback" not in result.stderr and not (tmp_path / "out" / "vdsr.h5").exists()


def test_training_into_a_file_or_an_unknown_validation_set_names_the_flag(tiny_training_flags, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = run_main(*tiny_training_flags, f"--checkpoint_dir={afile}", "--max_steps=1")
    assert result.returncode != 0 and "error: --checkpoint_dir: " in last_line(result)
    assert "is a file" in last_line(result)
    result = run_main(*tiny_training_flags, "--validation_dataset=Nope", "--max_steps=1")
    assert result.returncode != 0 and last_line(result).startswith("error: --validation_dataset: no folder")
    assert not (tmp_path / "ck").exists()


def test_the_design_card_command_line_uses_the_norm_clip_at_theta_1e_3(tiny_training_flags, tmp_path):
    result = run_main(*tiny_training_flags, "--grad_clip=1e-3", "--max_steps=2", "--steps_per_epoch=2")
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads((tmp_path / "ck" / "training_record.json").read_text())["config"]
    assert (config["clip"], config["grad_clip"], config["lr"]) == ("norm", 1e-3, 0.1)
    assert result.stdout.strip().splitlines()[-1] == f"saved step 2 to {tmp_path / 'ck'}"
