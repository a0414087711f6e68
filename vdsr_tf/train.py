"""The paper's training procedure (section 4.1): the Trainer that runs a `vdsr_tf.config.TrainConfig`.

Learning rate 0.1, divided by 10 every 20 epochs for 80 epochs, SGD with
momentum 0.9, weight decay 1e-4, batch 64; the step itself (loss, clip,
update) is `vdsr_tf.step`, and what happens around the steps (saving,
validation, TensorBoard, progress, SIGTERM) are the hooks of `vdsr_tf.hooks`.

The paper's epoch is small: 80 epochs are 9,960 iterations of 64 patches, so
an epoch here is `steps_per_epoch` (125) batches drawn from a shuffled walk
over all patches, not a full pass over the patch file. The data order is a
function of (seed, step), so resuming repeats nothing and skips nothing.
"""

import math
import os
import signal
import tempfile
import time
from dataclasses import asdict

import tensorflow as tf
from absl import logging

from vdsr_tf import hooks as training_hooks
from vdsr_tf.atomic import missing_folders, remove_empty_folders, remove_leftovers
from vdsr_tf.config import TrainConfig
from vdsr_tf.data import TrainingPatches, batch_indices
from vdsr_tf.distribute import default_strategy, distribute, is_chief
from vdsr_tf.evaluate import images_at_scale, read_luminances
from vdsr_tf.model import TRAINING_FLOAT32_LEADING_LAYERS, build_vdsr, read_weights, set_conv_weights
from vdsr_tf.paths import WEIGHTS_NAME
from vdsr_tf.record import RECORD_NAME, load_record, note_learning_rate, recorded_recipe
from vdsr_tf.state import (
    STATE_NAME,
    remove_partial_saves,
    restore_newest,
    saved_optimizer,
    saved_states,
    set_aside,
    state_dir,
)
from vdsr_tf.step import learning_rate_at, make_optimizer, make_train_step, patch_loss

RUN_FILES = (WEIGHTS_NAME, RECORD_NAME, training_hooks.CURVE_NAME)  # what a run writes beside its state
EARLIER_RUN = (*RUN_FILES, training_hooks.EPOCH_WEIGHTS_DIR)  # set aside, with the state, for a new run


class TrainingStopped(Exception):
    """A signal stopped the run before its end, once its state was saved: the same command continues it."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}")
        self.signum, self.step = signum, step


class Trainer:
    """Runs the steps from the restored step to the end of the schedule, calling the hooks around them."""

    def __init__(self, config: TrainConfig, *, model, optimizer, strategy, patches, checkpoint_dir):
        self.config, self.model, self.strategy, self.patches = config, model, strategy, patches
        self.checkpoint_dir = checkpoint_dir
        self.hooks = []  # `_hooks`: the checkpointing one needs the checkpoint of this Trainer's variables
        self.step_variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.epoch_sums = tf.Variable([0.0, 0.0], trainable=False, name="epoch_loss_sums")
        self.is_chief = is_chief(strategy)
        self.stop_signal = 0  # the signal that asked for a stop after the current step
        grad_clip = config.grad_clip if config.optimizer == "sgd" else None
        self.train_step = make_train_step(
            model,
            optimizer,
            strategy,
            batch_size=config.batch_size,
            weight_decay=config.weight_decay,
            grad_clip=grad_clip,
            clip=config.clip,
            bias_lr_scale=config.bias_lr_scale,
        )
        self.optimizer = optimizer

    @property
    def step(self) -> int:
        return int(self.step_variable.numpy())

    def wall_seconds(self) -> float:
        return self.wall_at_start + time.time() - self.started

    def run(self, record: dict, writer) -> dict:
        self.record, self.writer = record, writer
        self.first_step, self.wall_at_start, self.started = self.step, record["wall_seconds"], time.time()
        config = self.config
        self.end = config.total_steps if not config.max_steps else min(config.total_steps, self.step + config.max_steps)
        try:
            self._call("on_start")
            while self.step < self.end and not self.stop_signal:
                logs = self.run_step()
                self.step_variable.assign_add(1)
                self._call("on_step", logs)
                if self.step % config.steps_per_epoch == 0:
                    self._call("on_epoch_end")
        except KeyboardInterrupt:
            logging.info("interrupted at step %d; saving", self.step)
            self.stop_signal = signal.SIGINT
        finally:
            self._call("on_exit")  # however the run ends; on_stop (the final save) only when it ends well
        self._call("on_stop")
        if self.stop_signal and self.step < self.end:
            raise TrainingStopped(self.stop_signal, self.step)
        return self.record

    def run_step(self) -> dict:
        config, step = self.config, self.step
        learning_rate = learning_rate_at(
            step,
            base_lr=config.lr,
            decay_steps=config.lr_decay_epochs * config.steps_per_epoch,
            decay_factor=config.lr_decay_factor,
        )
        note_learning_rate(self.record, step, learning_rate, config.optimizer)
        inputs, labels = self.patches.batch(
            batch_indices(step, batch_size=config.batch_size, count=self.patches.count, seed=config.seed)
        )
        self.optimizer.learning_rate = learning_rate
        loss, clipped = self.train_step(
            distribute(self.strategy, inputs), distribute(self.strategy, labels), tf.constant(learning_rate, tf.float32)
        )
        loss = float(loss)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"training loss became {loss} at step {step + 1}; the last saved checkpoint is kept"
            )
        bicubic_loss = float(patch_loss(inputs, labels, config.batch_size))
        return {"loss": loss, "bicubic_loss": bicubic_loss, "learning_rate": learning_rate, "clipped": float(clipped)}

    def _call(self, event: str, *args):
        for hook in self.hooks:
            method = getattr(hook, event, None)
            if method is not None:
                method(self, *args)


def _check_resumable(config, states: list[str], checkpoint_dir: str) -> None:
    """The optimizer's slots and the batch order belong to the saved state: a resume must keep both."""
    recipe = recorded_recipe(os.path.join(checkpoint_dir, RECORD_NAME))
    saved = saved_optimizer(states)  # the state's slots say it even where the record is lost
    if saved:
        recipe["optimizer"] = saved.name
    for key, value in recipe.items():
        if getattr(config, key) != value:
            raise ValueError(
                f"--{key}={getattr(config, key)}: {checkpoint_dir} holds the state of a run with {key} {value}; "
                f"start this run in a new --checkpoint_dir with --init_weights"
            )
    if saved and saved.name == "sgd" and saved.momentum != (config.momentum > 0):
        raise ValueError(
            f"--momentum={config.momentum}: {checkpoint_dir} holds the state of a run "
            f"{'with' if saved.momentum else 'without'} momentum; start this run in a new --checkpoint_dir "
            "with --init_weights"
        )


def _load_start(config, model, path: str) -> int:
    """Sets --init_weights into `model` and returns their step, refusing another network or one past the schedule."""
    weights, attributes = read_weights(path)
    if bool(attributes["residual"]) != config.residual:
        raise ValueError(
            f"--init_weights={path}: a network with residual={bool(attributes['residual'])}, "
            f"but this run has --residual={config.residual}"
        )
    start = int(attributes.get("step", 0))
    if start >= config.total_steps:
        raise ValueError(
            f"--epochs={config.epochs} ends at step {config.total_steps}, but --init_weights={path} "
            f"is at step {start}: nothing to train; raise --epochs past {start // config.steps_per_epoch}"
        )
    set_conv_weights(model, weights, source=path)
    return start


def _set_aside_run(checkpoint_dir: str, names: list[str], start: tuple | None) -> tuple | None:
    """Sets the earlier run's `names` aside; returns `start` (--init_weights and its run's record) with
    each path where it is now: moved with them, or where it was."""
    kept = set_aside(checkpoint_dir, names)
    if not (kept and start):
        return start

    def now(path):
        inside = os.path.relpath(os.path.realpath(path), os.path.realpath(checkpoint_dir))
        return os.path.join(kept, inside) if inside.split(os.sep)[0] in names else path

    return tuple(now(path) for path in start)


def _record_of(weights_path: str) -> str:
    """The record of the run a weights file comes from: beside it, or above it for its epoch weights."""
    folder = os.path.dirname(os.path.abspath(weights_path))
    if os.path.basename(folder) == training_hooks.EPOCH_WEIGHTS_DIR:
        folder = os.path.dirname(folder)
    return os.path.join(folder, RECORD_NAME)


def _restore(config, trainer, checkpoint, core, checkpoint_dir) -> str | None:
    """Restores the saved state, or starts from --init_weights or afresh, setting earlier work aside.

    --init_weights are read and checked before anything is set aside. Returns the record of the run
    the start's weights come from (where it was set aside, if it was among the earlier run's files),
    None if it resumed or started afresh.
    """
    directory = state_dir(checkpoint_dir)
    remove_partial_saves(directory)
    init_weights = config.init_weights
    begin = (init_weights, _record_of(init_weights)) if init_weights else None
    step = _load_start(config, trainer.model, init_weights) if init_weights and config.restart else None
    if config.restart:
        begin = _set_aside_run(checkpoint_dir, [STATE_NAME, *EARLIER_RUN], begin)
    states = saved_states(directory) if os.path.isdir(directory) else []
    if states:
        _check_resumable(config, states, checkpoint_dir)
    restored = restore_newest(checkpoint, core, directory) if os.path.isdir(directory) else None
    if restored:
        _say_resumed(config, trainer.step, restored)
        return None
    if init_weights and step is None:
        step = _load_start(config, trainer.model, init_weights)
    begin = _set_aside_run(checkpoint_dir, list(EARLIER_RUN), begin)
    if not begin:
        return None
    trainer.step_variable.assign(step)
    logging.info("started from %s at step %d (optimizer state reset)", begin[0], trainer.step)
    return begin[1]


def _say_resumed(config, step: int, restored: str) -> None:
    logging.info("resumed from %s at step %d", restored, step)
    if config.init_weights:
        logging.warning(
            "--init_weights=%s not used: the saved state goes on (--restart starts anew)", config.init_weights
        )
    if step >= config.total_steps:
        logging.warning(
            "step %d is at or past the end of --epochs=%d (step %d): nothing to train; raise --epochs to go on",
            step,
            config.epochs,
            config.total_steps,
        )


def build_trainer(config, strategy, patches, checkpoint_dir):
    """The model, optimizer and Trainer under the strategy's scope; the full and the core checkpoint."""
    with strategy.scope():
        model = build_vdsr(
            depth=config.depth,
            width=config.width,
            residual=config.residual,
            seed=config.seed,
            precision=config.precision,
            float32_leading_layers=TRAINING_FLOAT32_LEADING_LAYERS,
        )
        optimizer = make_optimizer(config.optimizer, learning_rate=config.lr, momentum=config.momentum)
        optimizer.build(model.trainable_variables)
        trainer = Trainer(
            config,
            model=model,
            optimizer=optimizer,
            strategy=strategy,
            patches=patches,
            checkpoint_dir=checkpoint_dir,
        )
    core = tf.train.Checkpoint(model=model, optimizer=optimizer, step=trainer.step_variable)
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, step=trainer.step_variable, epoch_loss_sums=trainer.epoch_sums
    )
    return trainer, checkpoint, core


def _hooks(config, validation, manager) -> list:
    return [
        training_hooks.StopSignal(),
        training_hooks.ProgressBar(),
        training_hooks.TensorBoardScalars(),
        training_hooks.EpochLoss(),
        training_hooks.Validation(validation, every=config.validate_every),
        training_hooks.Checkpointing(manager, every_minutes=config.save_every_minutes),
    ]


def train(config: TrainConfig, *, strategy: tf.distribute.Strategy | None = None) -> dict:
    """Trains (or resumes training) and returns the training record; raises TrainingStopped, once the
    state is saved, where SIGTERM, Ctrl-C or SIGHUP ended it early.

    State (weights, optimizer slots, step, the epoch's loss sums) is saved to
    `<checkpoint_dir>/state` every `save_every_minutes` and at each epoch end;
    `<checkpoint_dir>/vdsr.h5` holds the weights of the latest save, in the
    format evaluation loads. A folder holding an earlier run's weights but no
    state is not overwritten: those files move to `previous-<time>/`.

    Raises:
      ValueError: on inconsistent settings, an unusable training file or state.
      FloatingPointError: when the loss stops being finite (nothing is saved).
    """
    strategy = strategy or default_strategy()
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"--batch_size={config.batch_size} does not split across {strategy.num_replicas_in_sync} replicas"
        )
    patches = TrainingPatches(config.train_h5)
    receptive_field = 2 * config.depth + 1
    if patches.patch_size < receptive_field:
        logging.warning("patches are %dpx, under the %dpx receptive field", patches.patch_size, receptive_field)
    luminances = read_luminances(list(config.validation_paths), list(config.validation_scales))
    validation = {scale: images_at_scale(luminances, scale) for scale in config.validation_scales}
    checkpoint_dir = config.checkpoint_dir if is_chief(strategy) else tempfile.mkdtemp(prefix="vdsr-worker-")
    created = missing_folders(checkpoint_dir)
    os.makedirs(checkpoint_dir, exist_ok=True)
    try:
        for name in RUN_FILES:
            if os.path.isdir(os.path.join(checkpoint_dir, name)):
                raise ValueError(f"--checkpoint_dir: {os.path.join(checkpoint_dir, name)} is a folder; move it away")
        for folder in (
            checkpoint_dir,
            os.path.join(checkpoint_dir, training_hooks.EPOCH_WEIGHTS_DIR),
            state_dir(checkpoint_dir),
        ):
            remove_leftovers(folder, project_folder=True)
        trainer, checkpoint, core = build_trainer(config, strategy, patches, checkpoint_dir)
        start_record = _restore(config, trainer, checkpoint, core, checkpoint_dir)
        manager = tf.train.CheckpointManager(checkpoint, state_dir(checkpoint_dir), max_to_keep=config.keep_checkpoints)
        trainer.hooks = _hooks(config, validation, manager)
        record_sources = [os.path.join(checkpoint_dir, RECORD_NAME)] + ([start_record] if start_record else [])
        record = load_record(record_sources, trainer.step, asdict(config))
        writer = tf.summary.create_file_writer(config.log_dir)
        try:
            record = trainer.run(record, writer)
        finally:
            writer.flush()  # a stopped run's last scalars too
    except BaseException:
        remove_empty_folders(created)  # a start refused (a wrong --init_weights, say) leaves no new folder
        raise
    finally:
        patches.close()
    return record
