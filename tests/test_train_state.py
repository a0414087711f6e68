"""Issue cases where training lost or hid work: each reproduced, then the fixed behaviour checked."""

import dataclasses
import json
import logging
import os
import shutil

import h5py
import numpy as np
import pytest

from vdsr_tf.config import TrainConfig
from vdsr_tf.model import build_vdsr, read_weights, save_weights
from vdsr_tf.record import RECORD_NAME, load_record, read_record
from vdsr_tf.train import train


def _run(config, **changes):
    return train(dataclasses.replace(config, **changes))


def _files(folder):
    return sorted(os.listdir(folder))


def _weights_step(config):
    return read_weights(os.path.join(config.checkpoint_dir, "vdsr.h5"))[1]["step"]


def test_missing_or_stale_exported_weights_are_rewritten_on_resume(tiny_training):
    # A kill after the state reached step 6 but before vdsr.h5 was renamed left vdsr.h5 older or missing.
    _run(tiny_training, max_steps=6)
    weights = os.path.join(tiny_training.checkpoint_dir, "vdsr.h5")
    os.remove(weights)
    _run(tiny_training, epochs=2)  # the schedule ended at step 6: nothing to train, but the export is due
    assert _weights_step(tiny_training) == 6
    with h5py.File(weights, "a") as file:
        file.attrs["step"] = 3
    _run(tiny_training, epochs=2)
    assert _weights_step(tiny_training) == 6


def test_a_lost_state_index_resumes_from_the_files_instead_of_restarting(tiny_training):
    _run(tiny_training, max_steps=6)
    os.remove(os.path.join(tiny_training.checkpoint_dir, "state", "checkpoint"))
    record = _run(tiny_training, max_steps=3)
    assert record["steps"] == 9 and _weights_step(tiny_training) == 9


def test_a_damaged_latest_state_falls_back_to_the_one_before(tiny_training, tmp_path):
    straight = _run(tiny_training, checkpoint_dir=str(tmp_path / "straight"), log_dir=str(tmp_path / "l1"))
    _run(tiny_training, max_steps=6)  # states at the epoch ends 3 and 6
    state = os.path.join(tiny_training.checkpoint_dir, "state")
    data = [name for name in _files(state) if name.startswith("ckpt-6.data")]
    with open(os.path.join(state, data[0]), "r+b") as file:
        file.write(b"garbage" * 100)
    record = _run(tiny_training)
    assert record["steps"] == 12 and straight["steps"] == 12
    assert [row["step"] for row in record["validation"]] == [0, 3, 6, 9, 12]
    for (k1, b1), (k2, b2) in zip(
        read_weights(str(tmp_path / "straight" / "vdsr.h5"))[0],
        read_weights(os.path.join(tiny_training.checkpoint_dir, "vdsr.h5"))[0],
    ):
        np.testing.assert_allclose(k1, k2, atol=1e-5)
        np.testing.assert_allclose(b1, b2, atol=1e-5)


def test_a_state_with_no_readable_checkpoint_is_refused_not_restarted(tiny_training):
    _run(tiny_training, max_steps=3)
    state = os.path.join(tiny_training.checkpoint_dir, "state")
    for name in _files(state):
        if name.startswith("ckpt-"):
            with open(os.path.join(state, name), "wb") as file:
                file.write(b"text")
    with pytest.raises(ValueError, match="state: holds training states but none can be restored.*--restart"):
        _run(tiny_training, max_steps=3)
    assert _weights_step(tiny_training) == 3  # the good export is untouched
    record = _run(tiny_training, max_steps=2, restart=True)
    assert record["steps"] == 2
    kept = [name for name in _files(tiny_training.checkpoint_dir) if name.startswith("previous-")]
    assert len(kept) == 1 and "vdsr.h5" in _files(os.path.join(tiny_training.checkpoint_dir, kept[0]))


def test_restart_from_the_folders_own_weights_reads_them_where_they_were_set_aside(tiny_training):
    _run(tiny_training, max_steps=3)
    own = os.path.join(tiny_training.checkpoint_dir, "vdsr.h5")
    record = _run(tiny_training, max_steps=2, restart=True, init_weights=own)
    assert record["steps"] == 5 and _weights_step(tiny_training) == 5
    assert [row["step"] for row in record["validation"]] == [0, 3, 5]  # the set-aside record carries on


def test_starting_from_the_folders_own_weights_keeps_them_and_a_restart_sets_epoch_weights_aside(tiny_training):
    """As a new machine carries on from checkpoints/vdsr.h5 in checkpoints/: the file was rewritten."""
    _run(tiny_training, max_steps=3, keep_epoch_weights=True)  # 3 steps: one epoch end
    own = os.path.join(tiny_training.checkpoint_dir, "vdsr.h5")
    shipped = open(own, "rb").read()
    shutil.rmtree(os.path.join(tiny_training.checkpoint_dir, "state"))
    record = _run(tiny_training, max_steps=2, init_weights=own)
    assert record["steps"] == 5 and [row["step"] for row in record["validation"]] == [0, 3, 5]
    kept = [name for name in _files(tiny_training.checkpoint_dir) if name.startswith("previous-")]
    assert (
        len(kept) == 1 and open(os.path.join(tiny_training.checkpoint_dir, kept[0], "vdsr.h5"), "rb").read() == shipped
    )
    assert _files(os.path.join(tiny_training.checkpoint_dir, kept[0], "weights")) == ["vdsr_000003.h5"]
    _run(tiny_training, max_steps=3, restart=True, keep_epoch_weights=True)
    assert _files(os.path.join(tiny_training.checkpoint_dir, "weights")) == ["vdsr_000003.h5"]  # this run's alone
    assert len([name for name in _files(tiny_training.checkpoint_dir) if name.startswith("previous-")]) == 2


def test_other_weights_of_the_folder_carry_its_record_though_it_is_set_aside(tiny_training):
    _run(tiny_training, max_steps=3)
    best = os.path.join(tiny_training.checkpoint_dir, "best.h5")
    shutil.copy(os.path.join(tiny_training.checkpoint_dir, "vdsr.h5"), best)
    shutil.rmtree(os.path.join(tiny_training.checkpoint_dir, "state"))
    record = _run(tiny_training, max_steps=1, init_weights=best)
    assert [row["step"] for row in record["validation"]] == [0, 3, 4]


def test_init_weights_beside_a_saved_state_is_said_to_be_unused(tiny_training, tmp_path, caplog):
    _run(tiny_training, max_steps=3)
    other = str(tmp_path / "other.h5")
    shutil.copy(os.path.join(tiny_training.checkpoint_dir, "vdsr.h5"), other)
    with caplog.at_level(logging.WARNING, logger="absl"):
        assert _run(tiny_training, max_steps=1, init_weights=other)["steps"] == 4
    assert f"--init_weights={other} not used: the saved state goes on (--restart starts anew)" in caplog.text


def test_restart_from_unusable_weights_moves_nothing(tiny_training, tmp_path):
    _run(tiny_training, max_steps=3)
    before = _files(tiny_training.checkpoint_dir)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(open(os.path.join(tiny_training.checkpoint_dir, "vdsr.h5"), "rb").read()[:500])
    other = str(tmp_path / "other.h5")
    save_weights(build_vdsr(depth=3, width=8, residual=False, seed=0), other, residual=False)
    for path, message in ((str(truncated), "unreadable weights file"), (other, "a network with residual=False")):
        with pytest.raises(ValueError, match=message):
            _run(tiny_training, max_steps=2, restart=True, init_weights=path)
        assert _files(tiny_training.checkpoint_dir) == before  # no previous-*/ for a run that did nothing


def test_a_refused_start_leaves_no_new_folder(tiny_training, tmp_path):
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    target = tmp_path / "new" / "run"
    with pytest.raises(ValueError, match="unreadable weights file"):
        _run(tiny_training, checkpoint_dir=str(target), init_weights=str(truncated), max_steps=1)
    assert not (tmp_path / "new").exists()


def test_a_folder_with_earlier_weights_but_no_state_keeps_them_aside(tiny_training):
    _run(tiny_training, max_steps=3)
    before = open(os.path.join(tiny_training.checkpoint_dir, "vdsr.h5"), "rb").read()
    shutil.rmtree(os.path.join(tiny_training.checkpoint_dir, "state"))
    record = _run(tiny_training, max_steps=1)
    assert record["steps"] == 1
    kept = [name for name in _files(tiny_training.checkpoint_dir) if name.startswith("previous-")]
    assert len(kept) == 1
    assert open(os.path.join(tiny_training.checkpoint_dir, kept[0], "vdsr.h5"), "rb").read() == before


def test_epoch_end_rows_missing_from_the_record_are_made_on_resume(tiny_training):
    # The periodic save could land on an epoch's last step before its validation ran.
    _run(tiny_training, max_steps=3)
    path = os.path.join(tiny_training.checkpoint_dir, "training_record.json")
    record = json.load(open(path))
    record["validation"] = [row for row in record["validation"] if row["step"] < 3]
    record["training_loss"] = []
    json.dump(record, open(path, "w"))
    record = _run(tiny_training, max_steps=3)
    assert [row["step"] for row in record["validation"]] == [0, 3, 6]
    assert [row["step"] for row in record["training_loss"]] == [3, 6]


def test_a_truncated_record_is_set_aside_and_the_state_resumes(tiny_training):
    _run(tiny_training, max_steps=3)
    path = os.path.join(tiny_training.checkpoint_dir, "training_record.json")
    text = open(path).read()
    open(path, "w").write(text[: len(text) // 2])
    record = _run(tiny_training, max_steps=3)
    assert record["steps"] == 6
    (kept,) = [name for name in _files(tiny_training.checkpoint_dir) if name.startswith("training_record.json.")]
    assert kept.startswith("training_record.json.damaged-")
    assert open(os.path.join(tiny_training.checkpoint_dir, kept)).read() == text[: len(text) // 2]


@pytest.mark.parametrize(
    "text",
    [
        '{"validation": [1, 2]}',
        '{"validation": [{"x": 1}]}',
        '{"learning_rate": [{}]}',
        '{"validation": [{"step": "3", "psnr_x2": 1}]}',
        '{"validation": [{"step": 0}]}',
        '{"validation": [{"step": 0, "psnr_x2": 30.0}, {"step": 3, "psnr_x3": 28.0}]}',
        '{"config": "abc"}',
        '{"wall_seconds": "abc"}',
    ],
)
def test_a_record_of_the_wrong_shape_is_set_aside_each_time_under_its_own_name(tmp_path, text):
    path = str(tmp_path / "training_record.json")
    for _ in range(2):
        open(path, "w").write(text)
        assert read_record(path) is None and not os.path.exists(path)
    assert len([name for name in _files(tmp_path) if name.startswith("training_record.json.damaged-")]) == 2


def test_an_adam_run_whose_record_is_lost_resumes(tiny_training):
    adam = dataclasses.replace(tiny_training, optimizer="adam", lr=1e-4)
    _run(adam, max_steps=3)
    os.remove(os.path.join(adam.checkpoint_dir, "training_record.json"))
    assert _run(adam, max_steps=3)["steps"] == 6
    with pytest.raises(ValueError, match="--optimizer=sgd: .* holds the state of a run with optimizer adam"):
        _run(tiny_training, max_steps=1)


def test_leftovers_of_a_killed_run_are_removed_on_start(tiny_training):
    _run(tiny_training, max_steps=3)
    folder = tiny_training.checkpoint_dir
    open(os.path.join(folder, ".tmp-abc.h5"), "w").close()
    os.makedirs(os.path.join(folder, "state", "ckpt-5_temp", "part"))
    open(os.path.join(folder, "state", ".tmp-index"), "w").close()  # a kill while the index was written
    _run(tiny_training, max_steps=1)
    assert not [name for name in _files(folder) if name.startswith(".tmp-")]
    assert not [name for name in _files(os.path.join(folder, "state")) if "_temp" in name or ".tmp-" in name]


def test_a_short_run_validates_at_its_end_and_says_where_it_saved(tiny_training, capsys):
    record = _run(tiny_training, max_steps=2)
    assert [row["step"] for row in record["validation"]] == [0, 2]
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"saved step 2 to {tiny_training.checkpoint_dir}"


def test_bad_settings_name_their_flag(tiny_training, tmp_path):
    file = tmp_path / "a_file"
    file.write_text("x")
    with pytest.raises(ValueError, match="--checkpoint_dir: .* is a file"):
        dataclasses.replace(tiny_training, checkpoint_dir=str(file))
    with pytest.raises(ValueError, match="--tensorboard_dir: .* is a file"):
        dataclasses.replace(tiny_training, log_dir=str(file))
    with pytest.raises(ValueError, match="--clip must be one of"):
        dataclasses.replace(tiny_training, clip="elementwise")
    with pytest.raises(ValueError, match="--bias_lr_scale must be a positive number"):
        dataclasses.replace(tiny_training, bias_lr_scale=0)
    with pytest.raises(ValueError, match="--validate_every must be at least 0"):
        dataclasses.replace(tiny_training, validate_every=-5)
    with pytest.raises(ValueError, match="--save_every_minutes must be a number of at least 0"):
        dataclasses.replace(tiny_training, save_every_minutes=float("inf"))
    assert isinstance(tiny_training, TrainConfig)


@pytest.mark.parametrize(
    "shape,dtype", [((4, 21, 21, 3), "float32"), ((4, 21, 21), "float32"), ((4, 21, 21, 1), "uint8")]
)
def test_an_unusable_patch_file_is_named_before_any_work(tiny_training, tmp_path, shape, dtype):
    path = str(tmp_path / "bad.h5")
    with h5py.File(path, "w") as file:
        file["data"] = np.zeros(shape, dtype)
        file["label"] = np.zeros(shape, dtype)
    with pytest.raises(ValueError, match="bad.h5: 'data' and 'label' must"):
        _run(tiny_training, train_h5=path)
    assert not os.path.exists(tiny_training.checkpoint_dir)


RESTORE_WITHOUT_INDEX = """
import os, sys
import tensorflow as tf
from vdsr_tf.state import restore_newest
directory = sys.argv[1]
variable = tf.Variable(0.0)
checkpoint = tf.train.Checkpoint(v=variable)
manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=3)
for value in (1.0, 2.0, 3.0):
    variable.assign(value)
    manager.save()
os.remove(os.path.join(directory, "checkpoint"))
variable.assign(0.0)
prefix = restore_newest(checkpoint, checkpoint, directory)
state = tf.train.get_checkpoint_state(directory)
listed = [os.path.basename(path) for path in state.all_model_checkpoint_paths]
print(os.path.basename(prefix), float(variable.numpy()), listed)
manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=2)
print(os.path.basename(manager.latest_checkpoint))
manager.save()
manager.save()
print(sorted(name[: -len(".index")] for name in os.listdir(directory) if name.endswith(".index")))
"""


def test_the_rewritten_state_index_lists_the_intact_states_and_old_ones_are_still_deleted(tmp_path):
    """Written without TensorFlow's deprecation warning, and with the timestamps without which
    CheckpointManager would never delete the states listed before a resume."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", RESTORE_WITHOUT_INDEX, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[:3] == [
        "ckpt-3 3.0 ['ckpt-1', 'ckpt-2', 'ckpt-3']",
        "ckpt-3",
        "['ckpt-4', 'ckpt-5']",
    ]
    assert "deprecated" not in result.stderr


def test_a_resume_logs_a_changed_clip_bias_learning_rate_and_seed(tmp_path, caplog):
    path = tmp_path / RECORD_NAME
    saved = {"precision": "float32", "clip": "value", "bias_lr_scale": 1.0, "seed": 123, "lr": 0.1}
    path.write_text(json.dumps({"steps": 500, "config": saved}))
    with caplog.at_level(logging.INFO, logger="absl"):
        record = load_record([str(path)], 500, {**saved, "clip": "norm", "bias_lr_scale": 0.1, "seed": 7})
    assert record["config"]["bias_lr_scale"] == 0.1
    assert "clip changes from value to norm at step 500" in caplog.text
    assert "bias_lr_scale changes from 1.0 to 0.1 at step 500" in caplog.text
    assert "seed changes from 123 to 7 at step 500" in caplog.text  # another data order from here on
    assert "precision changes" not in caplog.text and "lr changes" not in caplog.text


def test_a_folder_in_place_of_a_file_the_run_writes_is_refused_before_any_step(tiny_training):
    os.makedirs(os.path.join(tiny_training.checkpoint_dir, "training_curve.png"))
    with pytest.raises(ValueError, match="--checkpoint_dir: .*training_curve.png is a folder; move it away"):
        _run(tiny_training, max_steps=1)
    assert "state" not in _files(tiny_training.checkpoint_dir)


@pytest.mark.parametrize("name, momentum", [("sgd", 0.0), ("sgd", 0.9), ("adam", 0.9)])
def test_the_optimizer_is_read_from_a_saved_states_slots(tmp_path, name, momentum):
    import tensorflow as tf

    from vdsr_tf.state import saved_optimizer
    from vdsr_tf.step import make_optimizer

    model = build_vdsr(depth=3, width=4, seed=0)
    optimizer = make_optimizer(name, learning_rate=0.1, momentum=momentum)
    optimizer.build(model.trainable_variables)
    prefix = tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(tmp_path / "ckpt-1"))
    assert saved_optimizer([str(tmp_path / "damaged"), prefix]) == (name, momentum > 0)


def test_a_resume_keeps_sgd_with_or_without_momentum(tiny_training):
    """Keras keeps momentum slots only for momentum > 0: dropping them would lose the state's velocity,
    adding them made every state read as damaged."""
    _run(tiny_training, max_steps=2, optimizer="sgd", momentum=0.9)
    with pytest.raises(ValueError, match=r"--momentum=0.0: .* holds the state of a run with momentum; start this run"):
        _run(tiny_training, max_steps=1, optimizer="sgd", momentum=0.0)
    assert _run(tiny_training, max_steps=1, optimizer="sgd", momentum=0.5)["steps"] == 3
    _run(tiny_training, checkpoint_dir=tiny_training.checkpoint_dir + "-plain", max_steps=2, momentum=0.0)
    with pytest.raises(ValueError, match=r"--momentum=0.9: .* holds the state of a run without momentum"):
        _run(tiny_training, checkpoint_dir=tiny_training.checkpoint_dir + "-plain", max_steps=1, momentum=0.9)


def test_a_resume_logs_a_changed_momentum(tmp_path, caplog):
    path = tmp_path / RECORD_NAME
    path.write_text(json.dumps({"steps": 500, "config": {"momentum": 0.9}}))
    with caplog.at_level(logging.INFO, logger="absl"):
        load_record([str(path)], 500, {"momentum": 0.5})
    assert "momentum changes from 0.9 to 0.5 at step 500" in caplog.text


def test_a_run_from_epoch_weights_carries_their_runs_record(tiny_training, tmp_path):
    _run(tiny_training, max_steps=6, keep_epoch_weights=True)  # epoch ends at 3 and 6
    epoch_end = os.path.join(tiny_training.checkpoint_dir, "weights", "vdsr_000003.h5")
    record = _run(tiny_training, checkpoint_dir=str(tmp_path / "from3"), init_weights=epoch_end, max_steps=1)
    assert [row["step"] for row in record["validation"]] == [0, 3, 4]
