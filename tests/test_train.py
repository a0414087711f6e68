import dataclasses
import os
import signal
import subprocess
import sys
import types

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import ROOT

from vdsr_tf import hooks
from vdsr_tf.evaluate import evaluate
from vdsr_tf.model import build_vdsr, load_vdsr, read_weights
from vdsr_tf.step import clip_gradients, learning_rate_at, make_optimizer, make_train_step
from vdsr_tf.train import TrainingStopped, train


def test_paper_schedule():
    # 0.1 divided by 10 every 20 epochs of 125 steps: drops at steps 2,500, 5,000 and 7,500.
    rates = [
        learning_rate_at(s, base_lr=0.1, decay_steps=2500, decay_factor=0.1)
        for s in (0, 2499, 2500, 5000, 7499, 7500, 9999)
    ]
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.001, 0.001, 1e-4, 1e-4], rtol=1e-12)


def test_adjustable_clip_bounds_every_element():
    gradients = [tf.constant([[-3.0, 0.5], [0.01, 2.0]]), tf.constant([-0.2, 0.05])]
    clipped, fraction = clip_gradients("value", gradients, 0.1)
    np.testing.assert_allclose(clipped[0].numpy(), [[-0.1, 0.1], [0.01, 0.1]])
    np.testing.assert_allclose(clipped[1].numpy(), [-0.1, 0.05])
    assert float(fraction) == pytest.approx(4 / 6)


def test_applied_gradient_elements_lie_within_theta_over_lr(rng):
    model = build_vdsr(depth=3, width=8, seed=0)
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.0)
    optimizer.build(model.trainable_variables)
    theta, learning_rate = 1e-4, 0.1
    step = make_train_step(
        model, optimizer, tf.distribute.get_strategy(), batch_size=8, weight_decay=1e-4, grad_clip=theta
    )
    before = [v.numpy().copy() for v in model.trainable_variables]
    inputs = rng.random((8, 21, 21, 1)).astype(np.float32)
    _, fraction = step(tf.constant(inputs), tf.constant(inputs[::-1].copy()), tf.constant(learning_rate))
    applied = [(b - v.numpy()) / learning_rate for b, v in zip(before, model.trainable_variables)]
    largest = max(np.max(np.abs(a)) for a in applied)
    assert float(fraction) > 0.1  # the clip is really active in this case
    # The update is measured as a float32 difference of weights of magnitude ~0.5, good to
    # about 1e-7 absolute, i.e. 1e-3 of the 1e-4 step.
    assert largest <= theta / learning_rate * (1 + 1e-3)
    assert largest >= theta / learning_rate * (1 - 1e-3)


def _weights(config):
    return read_weights(os.path.join(config.checkpoint_dir, "vdsr.h5"))


def _assert_training_loss_at_epoch_ends(record):
    """The training loss against bicubic's, once an epoch (3 and 6), kept across a resume."""
    assert [row["step"] for row in record["training_loss"]] == [3, 6]
    # The untrained tiny network's residual is far from the target (ratio ~1e5); it must fall as it learns.
    ratios = [row["loss_over_bicubic"] for row in record["training_loss"]]
    assert all(np.isfinite(ratios)) and 0 < ratios[1] < ratios[0]


def test_resuming_half_way_equals_training_straight_through(tiny_training, tmp_path):
    straight = dataclasses.replace(tiny_training, max_steps=8)
    record = train(straight)
    assert record["steps"] == 8
    halves = dataclasses.replace(
        tiny_training, checkpoint_dir=str(tmp_path / "halves"), log_dir=str(tmp_path / "logs2"), max_steps=4
    )
    train(halves)
    assert _weights(halves)[1]["step"] == 4
    record = train(halves)
    weights_straight, attributes = _weights(straight)
    weights_halves, _ = _weights(halves)
    assert attributes["step"] == 8 and record["steps"] == 8
    assert not os.path.exists(os.path.join(straight.checkpoint_dir, "weights"))  # kept only when asked
    for (k1, b1), (k2, b2) in zip(weights_straight, weights_halves):
        np.testing.assert_allclose(k1, k2, atol=1e-5)
        np.testing.assert_allclose(b1, b2, atol=1e-5)
    # The schedule (decay every 2 epochs of 3 steps) shows in the record.
    assert [row["from_step"] for row in record["learning_rate"]] == [0, 6]
    # Validation at step 0 and at each epoch end (3 and 6), kept across the resume.
    assert [row["step"] for row in record["validation"]] == [0, 3, 6]
    _assert_training_loss_at_epoch_ends(record)


def test_tensorboard_holds_the_validation_curves(tiny_training):
    train(dataclasses.replace(tiny_training, max_steps=3))
    tags = set()
    for name in os.listdir(tiny_training.log_dir):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(tiny_training.log_dir, name)):
            tags.update(value.tag for value in event.summary.value)
    expected = {
        "val/psnr_x2",
        "val/psnr_x3",
        "val/psnr_x4",
        "train/loss",
        "train/lr",
        "train/clipped_fraction",
        "train/loss_over_bicubic",
        "val/bicubic_vdsr_truth",
    }
    assert expected <= tags
    assert os.path.isfile(os.path.join(tiny_training.checkpoint_dir, "training_curve.png"))


def test_non_finite_loss_stops_without_overwriting(tiny_training):
    train(dataclasses.replace(tiny_training, max_steps=2))
    good, _ = _weights(tiny_training)
    with h5py.File(tiny_training.train_h5, "a") as file:
        labels = file["label"]
        labels[...] = np.full(labels.shape, np.nan, labels.dtype)  # a scalar would be broadcast chunk by chunk
    with pytest.raises(FloatingPointError, match="step 3"):
        train(dataclasses.replace(tiny_training, max_steps=2))
    after, attributes = _weights(tiny_training)
    assert attributes["step"] == 2
    for (k1, _), (k2, _) in zip(good, after):
        np.testing.assert_array_equal(k1, k2)


def test_batch_size_must_split_and_be_positive(tiny_training):
    with pytest.raises(ValueError, match="batch_size"):
        train(dataclasses.replace(tiny_training, batch_size=0))


_TWO_DEVICES = """
import dataclasses, sys, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from vdsr_tf.config import TrainConfig
from vdsr_tf.train import train
from vdsr_tf.model import read_weights
config = TrainConfig(**eval(sys.argv[1]))
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert mirrored.num_replicas_in_sync == 2
train(dataclasses.replace(config, checkpoint_dir=config.checkpoint_dir + "_two"), strategy=mirrored)
train(config, strategy=tf.distribute.get_strategy())
two, _ = read_weights(config.checkpoint_dir + "_two/vdsr.h5")
one, _ = read_weights(config.checkpoint_dir + "/vdsr.h5")
print("largest difference", max(float(np.max(np.abs(a[0] - b[0]))) for a, b in zip(one, two)))
"""


def test_two_logical_devices_train_like_one(tiny_training):
    config = dataclasses.replace(tiny_training, max_steps=3)
    settings = {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
    result = subprocess.run(
        [sys.executable, "-c", _TWO_DEVICES, repr(settings)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    difference = float(result.stdout.split("largest difference")[1])
    # The gradient of the global batch is summed over the two replicas before the clip,
    # so both runs take the same steps up to float32 reduction order.
    assert difference < 1e-5


def test_starting_from_exported_weights_continues_step_and_record(tiny_training, tmp_path):
    train(dataclasses.replace(tiny_training, max_steps=3))
    exported = os.path.join(tiny_training.checkpoint_dir, "vdsr.h5")
    # A new session: the state folder is gone, only the exported weights and the record remain.
    carried = dataclasses.replace(
        tiny_training, checkpoint_dir=str(tmp_path / "next"), init_weights=exported, max_steps=3
    )
    record = train(carried)
    assert record["steps"] == 6
    assert [row["step"] for row in record["validation"]] == [0, 3, 6]
    _assert_training_loss_at_epoch_ends(record)
    assert _weights(carried)[1]["step"] == 6


def test_loss_is_per_patch_sum_averaged_over_the_batch(rng):
    # The authors' normalisation (MatConvNet cnn_train): 1/2 ||r - f(x)||^2 summed over a
    # patch's pixels, averaged over the batch. With a zero residual the output is the input,
    # so the loss is 1/2 * sum((x - y)^2) / batch, computed here by hand.
    model = build_vdsr(depth=3, width=4, seed=0)
    last = model.layers[-2]
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    step = make_train_step(
        model, optimizer, tf.distribute.get_strategy(), batch_size=4, weight_decay=1e-4, grad_clip=1e-4
    )
    inputs = rng.random((4, 9, 9, 1)).astype(np.float32)
    labels = rng.random((4, 9, 9, 1)).astype(np.float32)
    loss, _ = step(tf.constant(inputs), tf.constant(labels), tf.constant(0.1))
    assert float(loss) == pytest.approx(0.5 * np.sum((inputs - labels) ** 2) / 4, rel=1e-5)


def test_validation_curve_agrees_with_evaluation_of_the_exported_weights(tiny_training, tiny_data_dir):
    # The Set5 curve during training must be the figure evaluation mode gives for the weights
    # exported at that step, or the curve would say nothing about the shipped checkpoint.
    record = train(dataclasses.replace(tiny_training, max_steps=3))
    assert record["validation"][-1]["step"] == 3
    model, attributes = load_vdsr(os.path.join(tiny_training.checkpoint_dir, "vdsr.h5"))
    assert attributes["step"] == 3
    rows = evaluate(model, data_dir=str(tiny_data_dir), datasets=["Set5"], scales=[2, 3, 4])
    for row in rows:
        assert record["validation"][-1][f"psnr_x{row['scale']}"] == pytest.approx(row["psnr"], abs=1e-6)
    # The untrained network's figures differ from the trained one's, so the comparison has teeth.
    assert record["validation"][0]["psnr_x2"] != pytest.approx(record["validation"][-1]["psnr_x2"], abs=1e-3)


def test_adam_steps_are_unclipped_and_lr_sized(rng):
    # Adam's first step is lr * g / (|g| + eps) per element: lr in the gradient's direction,
    # whatever the gradient's scale, and no clip is applied (clipped fraction 0).
    model = build_vdsr(depth=3, width=8, seed=0)
    learning_rate = 1e-3
    optimizer = make_optimizer("adam", learning_rate=learning_rate, momentum=0.9)
    optimizer.build(model.trainable_variables)
    step = make_train_step(
        model, optimizer, tf.distribute.get_strategy(), batch_size=8, weight_decay=1e-4, grad_clip=None
    )
    inputs = rng.random((8, 21, 21, 1)).astype(np.float32)
    labels = inputs[::-1].copy()
    with tf.GradientTape() as tape:
        loss = 0.5 * tf.reduce_sum(tf.square(model(inputs) - labels)) / 8
    kernel_gradient = tape.gradient(loss, model.layers[1].kernel).numpy()
    before = model.layers[1].kernel.numpy().copy()
    _, fraction = step(tf.constant(inputs), tf.constant(labels), tf.constant(learning_rate))
    moved = before - model.layers[1].kernel.numpy()
    assert float(fraction) == 0.0
    large = np.abs(kernel_gradient) > 1e-3  # elements where weight decay and eps cannot flip or shrink the step
    assert large.mean() > 0.5
    np.testing.assert_allclose(moved[large], learning_rate * np.sign(kernel_gradient[large]), rtol=1e-3)


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="--optimizer"):
        make_optimizer("rmsprop", learning_rate=0.1, momentum=0.9)


def test_adam_continues_from_sgd_weights_and_will_not_resume_an_sgd_state(tiny_training, tmp_path):
    train(dataclasses.replace(tiny_training, max_steps=3))
    exported = os.path.join(tiny_training.checkpoint_dir, "vdsr.h5")
    adam = dataclasses.replace(
        tiny_training,
        checkpoint_dir=str(tmp_path / "adam"),
        init_weights=exported,
        optimizer="adam",
        lr=1e-3,
        max_steps=3,
    )
    record = train(adam)
    assert record["steps"] == 6
    assert [(row["from_step"], row["optimizer"]) for row in record["learning_rate"]] == [(0, "sgd"), (3, "adam")]
    assert record["config"]["optimizer"] == "adam"
    _assert_training_loss_at_epoch_ends(record)
    record = train(dataclasses.replace(adam, max_steps=3))  # resumes its own state
    assert record["steps"] == 9
    # The SGD state is not silently read into Adam's slots, nor the other way round.
    with pytest.raises(ValueError, match="--optimizer=adam"):
        train(dataclasses.replace(adam, checkpoint_dir=tiny_training.checkpoint_dir))
    with pytest.raises(ValueError, match="--optimizer=sgd"):
        train(dataclasses.replace(adam, optimizer="sgd"))


def test_resume_with_another_batch_size_is_refused_naming_the_flag(tiny_training):
    train(dataclasses.replace(tiny_training, max_steps=3))
    with pytest.raises(ValueError, match="--batch_size=4: .* batch_size 8"):
        train(dataclasses.replace(tiny_training, batch_size=4, max_steps=3))
    assert train(dataclasses.replace(tiny_training, max_steps=3))["steps"] == 6


def test_ctrl_c_during_the_first_validation_still_saves(tiny_training, monkeypatch, capsys):
    train(dataclasses.replace(tiny_training, max_steps=3))

    def interrupted(self, trainer):
        raise KeyboardInterrupt

    monkeypatch.setattr(hooks.Validation, "on_start", interrupted)
    try:
        with pytest.raises(TrainingStopped, match="stopped by SIGINT at step 3"):
            train(dataclasses.replace(tiny_training, max_steps=3))
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C in a hook's on_start escaped the Trainer without a save")
    assert capsys.readouterr().out.splitlines()[-1] == f"saved step 3 to {tiny_training.checkpoint_dir}"


def test_weights_at_or_past_the_schedule_end_are_refused_before_any_file_moves(tiny_training, tmp_path):
    train(dataclasses.replace(tiny_training, max_steps=6))
    exported = os.path.join(tiny_training.checkpoint_dir, "vdsr.h5")
    target = tmp_path / "next"
    target.mkdir()
    (target / "vdsr.h5").write_bytes(b"earlier weights")
    # 2 epochs of 3 steps end at step 6, where the weights already are: a run that would do nothing.
    ended = dataclasses.replace(tiny_training, checkpoint_dir=str(target), init_weights=exported, epochs=2)
    with pytest.raises(ValueError, match=r"--epochs=2 ends at step 6.*at step 6: nothing to train"):
        train(ended)
    assert sorted(os.listdir(target)) == ["vdsr.h5"]
    assert train(dataclasses.replace(ended, epochs=3))["steps"] == 9


def test_a_first_ctrl_c_asks_for_a_stop_a_second_stops_and_an_ignored_one_stays_ignored():
    trainer, stop, before = (
        types.SimpleNamespace(stop_signal=0),
        hooks.StopSignal(),
        signal.getsignal(signal.SIGINT),
    )
    stop.on_start(trainer)
    try:
        signal.raise_signal(signal.SIGINT)
        assert trainer.stop_signal == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    finally:
        stop.on_exit(trainer)
    assert signal.getsignal(signal.SIGINT) is before
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stop.on_start(trainer)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        stop.on_exit(trainer)
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("at_step, stopped", [(2, True), (3, False)])
def test_a_stop_asked_in_the_last_step_is_a_finished_run(tiny_training, monkeypatch, at_step, stopped):
    """`train && evaluate` should go on when the schedule ended anyway."""
    counted = hooks.EpochLoss.on_step

    def signal_at(self, trainer, logs):
        counted(self, trainer, logs)
        if trainer.step == at_step:
            trainer.stop_signal = signal.SIGTERM

    monkeypatch.setattr(hooks.EpochLoss, "on_step", signal_at)
    if stopped:
        with pytest.raises(TrainingStopped, match="stopped by SIGTERM at step 2"):
            train(dataclasses.replace(tiny_training, max_steps=3))
    else:
        assert train(dataclasses.replace(tiny_training, max_steps=3))["steps"] == 3


def test_a_run_that_fails_gives_ctrl_c_back(tiny_training, monkeypatch):
    before = signal.getsignal(signal.SIGINT)

    def broken(self, trainer, logs):
        raise RuntimeError("a hook failed")

    monkeypatch.setattr(hooks.EpochLoss, "on_step", broken)
    with pytest.raises(RuntimeError, match="a hook failed"):
        train(dataclasses.replace(tiny_training, max_steps=2))
    assert signal.getsignal(signal.SIGINT) is before and signal.getsignal(signal.SIGTERM) is not None
