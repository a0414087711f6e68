"""What a training run does around its steps, one hook each (after Keras callbacks).

A hook may define `on_start(trainer)`, `on_step(trainer, logs)`,
`on_epoch_end(trainer)`, `on_exit(trainer)` (however the run ends) and `on_stop(trainer)`
(the end of a run that ended well, or by Ctrl-C); the Trainer calls them in list order.
`logs` holds the step's `loss`, `bicubic_loss`, `learning_rate` and `clipped`. Adding a
behaviour means adding a hook here and to the list `vdsr_tf.train._hooks` builds.
"""

import contextlib
import os
import signal
import time

import h5py
import numpy as np
import tensorflow as tf
from absl import logging
from tqdm import tqdm

from vdsr_tf.evaluate import score
from vdsr_tf.metrics import to_uint8_range
from vdsr_tf.model import WEIGHTS_FORMAT, make_predictor, save_weights
from vdsr_tf.paths import WEIGHTS_NAME
from vdsr_tf.plot import plot_validation_curve
from vdsr_tf.record import RECORD_NAME, has_row, save_record
from vdsr_tf.runtime import stop_signals_handled

CURVE_NAME = "training_curve.png"
EPOCH_WEIGHTS_DIR = "weights"


def epoch_weights_path(checkpoint_dir: str, step: int) -> str:
    """Where `keep_epoch_weights` keeps the weights of the epoch that ends at `step`."""
    return os.path.join(checkpoint_dir, EPOCH_WEIGHTS_DIR, f"vdsr_{step:06d}.h5")


class TensorBoardScalars:
    """train/loss, loss_over_bicubic, lr and clipped_fraction every step."""

    def on_step(self, trainer, logs):
        with trainer.writer.as_default(step=trainer.step):
            tf.summary.scalar("train/loss", logs["loss"])
            tf.summary.scalar("train/loss_over_bicubic", logs["loss"] / max(logs["bicubic_loss"], 1e-12))
            tf.summary.scalar("train/lr", logs["learning_rate"])
            tf.summary.scalar("train/clipped_fraction", logs["clipped"])


class EpochLoss:
    """The epoch's training loss over the bicubic input's own (1 = no better than bicubic).

    A measure of progress on training data alone, so that settings can be
    compared without a test set. The sums live in the training state, so a
    resumed epoch's figure covers all of its steps.
    """

    def on_start(self, trainer):
        if trainer.step and trainer.step % trainer.config.steps_per_epoch == 0:
            self.on_epoch_end(trainer)

    def on_step(self, trainer, logs):
        if (trainer.step - 1) % trainer.config.steps_per_epoch == 0:
            trainer.epoch_sums.assign([0.0, 0.0])
        trainer.epoch_sums.assign_add([logs["loss"], logs["bicubic_loss"]])

    def on_epoch_end(self, trainer):
        network, bicubic = trainer.epoch_sums.numpy()
        if bicubic > 0 and not has_row(trainer.record, "training_loss", trainer.step):
            trainer.record["training_loss"].append(
                {"step": trainer.step, "loss_over_bicubic": float(network / bicubic)}
            )


class Validation:
    """Mean PSNR per scale on the validation images, into the record and TensorBoard (with an image panel).

    Runs at step 0, at every epoch end, every `every` steps if set, and at the
    end of a run shorter than an epoch; a step already in the record (say the
    epoch end a killed run saved before validating) is validated on resume.
    """

    def __init__(self, images_by_scale: dict, *, every: int = 0):
        self.images_by_scale, self.every = images_by_scale, every

    def on_start(self, trainer):
        self.predict = make_predictor(trainer.model)
        at_epoch_end = trainer.step % trainer.config.steps_per_epoch == 0
        if at_epoch_end and not has_row(trainer.record, "validation", trainer.step):
            self.validate(trainer)

    def on_step(self, trainer, logs):
        if self.every and trainer.step % self.every == 0 and trainer.step % trainer.config.steps_per_epoch:
            self.validate(trainer)

    def on_epoch_end(self, trainer):
        self.validate(trainer)

    def on_stop(self, trainer):
        if trainer.step == trainer.end and trainer.step - trainer.first_step < trainer.config.steps_per_epoch:
            self.validate(trainer)

    def validate(self, trainer):
        if has_row(trainer.record, "validation", trainer.step):
            return
        row = {"step": trainer.step}
        with trainer.writer.as_default(step=trainer.step):
            for scale, images in self.images_by_scale.items():
                outputs = [self.predict(image.interpolated) for image in images]
                row[f"psnr_x{scale}"] = float(np.mean([score(i, o, scale)[0] for i, o in zip(images, outputs)]))
                tf.summary.scalar(f"val/psnr_x{scale}", row[f"psnr_x{scale}"])
                if scale == min(self.images_by_scale):
                    first = images[0]
                    panel = [to_uint8_range(first.interpolated), to_uint8_range(outputs[0]), first.ground_truth]
                    panel = np.concatenate(panel, axis=1) / 255.0
                    tf.summary.image("val/bicubic_vdsr_truth", panel[None, :, :, None].astype(np.float32))
        trainer.record["validation"].append(row)
        trainer.record["validation"].sort(key=lambda r: r["step"])
        logging.info("step %d validation %s", trainer.step, {k: round(v, 3) for k, v in row.items() if k != "step"})


class Checkpointing:
    """Saves the state, the exported `vdsr.h5`, the record and the curve.

    Every `every_minutes`, at each epoch end (after its validation, so the row
    is in the save that covers its step) and when the run stops. On start it
    brings the exports in line with the restored state: a kill between writing
    the state and the weights left them older or missing. Only the chief of a
    multi-worker run writes where the user asked; the others write to a
    scratch folder, as TensorFlow's collective saving requires.
    """

    def __init__(self, manager, *, every_minutes: float):
        self.manager, self.every_seconds = manager, 60 * every_minutes

    def on_start(self, trainer):
        self.last = time.time()
        exported = os.path.join(trainer.checkpoint_dir, WEIGHTS_NAME)
        if trainer.step and _saved_step(exported) != trainer.step:
            logging.info("bringing %s up to the restored step %d", exported, trainer.step)
            self.save(trainer, write_state=False)

    def on_step(self, trainer, logs):
        at_epoch_end = trainer.step % trainer.config.steps_per_epoch == 0
        if time.time() - self.last > self.every_seconds and not at_epoch_end:
            self.save(trainer)

    def on_epoch_end(self, trainer):
        self.save(trainer, epoch_end=True)

    def on_stop(self, trainer):
        if self.manager.latest_checkpoint != self._path(trainer.step):
            self.save(trainer)
        if trainer.is_chief:
            print(f"saved step {trainer.step} to {trainer.checkpoint_dir}")

    def _path(self, step):
        return os.path.join(self.manager.directory, f"ckpt-{step}")

    def save(self, trainer, *, write_state: bool = True, epoch_end: bool = False):
        if write_state:
            self.manager.save(checkpoint_number=trainer.step)
        self.last = time.time()
        trainer.record["steps"] = trainer.step
        trainer.record["wall_seconds"] = trainer.wall_seconds()
        config = trainer.config
        metadata = {"step": trainer.step, "source": "trained by vdsr_tf.train", "train_h5": config.train_h5_name}
        paths = [os.path.join(trainer.checkpoint_dir, WEIGHTS_NAME)]
        if epoch_end and config.keep_epoch_weights:
            paths.append(epoch_weights_path(trainer.checkpoint_dir, trainer.step))
        for path in paths:
            save_weights(trainer.model, path, residual=config.residual, metadata=metadata)
        save_record(trainer.record, os.path.join(trainer.checkpoint_dir, RECORD_NAME))
        if trainer.record["validation"]:
            dataset = os.path.basename(os.path.dirname(config.validation_paths[0]))
            curve = os.path.join(trainer.checkpoint_dir, CURVE_NAME)
            plot_validation_curve(trainer.record["validation"], curve, dataset=dataset)


def _saved_step(path: str) -> int | None:
    try:
        with h5py.File(path, "r") as file:
            return int(file.attrs["step"]) if file.attrs.get("format") == WEIGHTS_FORMAT else None
    except (OSError, KeyError):
        return None


class ProgressBar:
    """A tqdm bar per epoch with the loss, lr and clipped share."""

    def __init__(self):
        self.epoch, self.bar = None, None

    def on_step(self, trainer, logs):
        config = trainer.config
        epoch = (trainer.step - 1) // config.steps_per_epoch
        if self.epoch != epoch:
            self.close()
            self.epoch = epoch
            done = trainer.step - 1 - epoch * config.steps_per_epoch
            self.bar = tqdm(
                total=config.steps_per_epoch, initial=done, desc=f"epoch {epoch + 1}/{config.epochs}", unit="step"
            )
        self.bar.set_postfix(
            loss=f"{logs['loss']:.4f}", lr=f"{logs['learning_rate']:g}", clipped=f"{logs['clipped']:.2f}"
        )
        self.bar.update(1)

    def on_stop(self, trainer):
        self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class StopSignal:
    """Turns SIGTERM, SIGHUP (a closed terminal) and a first Ctrl-C into a clean stop after the current
    step (the state is then saved).

    A Ctrl-C that interrupted the step itself could leave its update applied but not counted. A second
    Ctrl-C stops at once; a signal that is ignored (SIGINT in a shell's background job, SIGHUP under
    nohup) stays ignored.
    """

    def __init__(self):
        self.handlers = contextlib.ExitStack()  # closed on exit: the replaced handlers come back

    def on_start(self, trainer):
        def request_stop(signum, frame):
            if signum == signal.SIGINT:
                if trainer.stop_signal:
                    raise KeyboardInterrupt
                logging.info("stopping after this step (Ctrl-C again stops at once)")
            trainer.stop_signal = signum

        self.handlers.enter_context(stop_signals_handled(request_stop))

    def on_exit(self, trainer):
        self.handlers.close()
