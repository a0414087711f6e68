"""The paper's training procedure (section 3.3 and 4.1).

SGD with momentum 0.9 on the loss 1/2 ||r - f(x)||^2 of each patch (summed
over its pixels, averaged over the batch: the paper's loss "averaged over the
training set", and MatConvNet's `cnn_train` normalisation, which the authors
used), plus weight decay 1e-4 (L2 on the kernels). A per-pixel mean instead
makes the lr-0.1 steps ~1,681 times smaller: measured here, ~6e-5 in norm per
step, far too slow for the 10,000-step schedule. Learning rate 0.1,
divided by 10 every 20 epochs for 80 epochs. Adjustable gradient clipping
(section 3.2): every gradient element is clipped to [-theta/lr, theta/lr] with
the current learning rate lr, so the largest step is theta whatever lr is.

The paper's epoch is small: 80 epochs are 9,960 iterations of 64 patches, so
an epoch here is `steps_per_epoch` (125) batches drawn from a shuffled walk
over all patches, not a full pass over the patch file.

`optimizer="adam"` is not the paper's: Adam (no clipping; its lr is the step
size of every element) on the same loss, for continuing from the paper
schedule's weights. Per-element step sizes suit this loss: measured at our
weights, the last layer's bias has a gradient of ~0.9 and a middle kernel
element one of ~8e-5, so an SGD lr small enough to be stable on the first
barely moves the second (README, "Our own run").
"""

import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from tqdm import tqdm

from vdsr_tf.atomic import atomic_path
from vdsr_tf.data import TrainingPatches, batch_indices
from vdsr_tf.evaluate import make_predictor, prepare_test_images, score
from vdsr_tf.metrics import to_uint8_range
from vdsr_tf.model import build_vdsr, conv_layers, read_weights, save_weights, set_conv_weights
from vdsr_tf.paths import WEIGHTS_NAME
from vdsr_tf.plot import plot_validation_curve

RECORD_NAME = "training_record.json"
CURVE_NAME = "training_curve.png"


@dataclass(frozen=True)
class TrainConfig:
    train_h5: str
    checkpoint_dir: str
    log_dir: str
    validation_paths: tuple[str, ...]
    validation_scales: tuple[int, ...] = (2, 3, 4)
    depth: int = 20
    width: int = 64
    residual: bool = True
    lr: float = 0.1
    lr_decay_epochs: int = 20
    lr_decay_factor: float = 0.1
    epochs: int = 80
    steps_per_epoch: int = 125
    batch_size: int = 64
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    grad_clip: float = 1e-4
    max_steps: int = 0
    validate_every: int = 0
    save_every_minutes: float = 5.0
    keep_checkpoints: int = 3
    keep_epoch_weights: bool = False
    seed: int = 123
    init_weights: str | None = None
    precision: str = "float32"

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def learning_rate_at(step: int, *, base_lr: float, decay_steps: int, decay_factor: float) -> float:
    """Step-wise schedule: base_lr * decay_factor ** (step // decay_steps)."""
    return base_lr * decay_factor ** (step // decay_steps)


def adjustable_clip(gradients: list, bound) -> tuple[list, tf.Tensor]:
    """Clips every gradient element to [-bound, bound] (paper section 3.2, bound = theta / lr).

    Returns the clipped gradients and the share of elements the clip changed.
    """
    clipped = [tf.clip_by_value(gradient, -bound, bound) for gradient in gradients]
    hit = tf.add_n([tf.reduce_sum(tf.cast(tf.abs(g) > bound, tf.float32)) for g in gradients])
    total = sum(int(np.prod(g.shape)) for g in gradients)
    return clipped, hit / total


OPTIMIZERS = ("sgd", "adam")


def make_optimizer(name: str, *, learning_rate: float, momentum: float) -> keras.optimizers.Optimizer:
    """SGD with momentum (the paper) or Adam (Keras defaults otherwise)."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    raise ValueError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {name}")


def default_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs when there are several, else the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


def _distribute(strategy: tf.distribute.Strategy, array: np.ndarray):
    """Splits a global batch evenly across the strategy's replicas."""
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return tf.constant(array)
    parts = np.split(array, replicas)
    return strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(parts[context.replica_id_in_sync_group])
    )


def patch_loss(outputs, labels, batch_size: int):
    """1/2 the squared error summed over each patch's pixels, averaged over the batch (see the module doc)."""
    return 0.5 * tf.reduce_sum(tf.square(outputs - labels)) / batch_size


def make_train_step(model, optimizer, strategy, *, batch_size: int, weight_decay: float, grad_clip: float | None):
    """The compiled training step: (inputs, labels, lr) -> (data loss, clipped fraction).

    Gradients are summed across replicas before the clip, so the clip acts on
    the gradient of the whole global batch, exactly as on one device.
    `grad_clip=None` applies the gradient unclipped (clipped fraction 0).
    """
    variables = model.trainable_variables
    kernels = [layer.kernel for layer in conv_layers(model)]
    replicas = strategy.num_replicas_in_sync

    def replica_gradients(inputs, labels):
        with tf.GradientTape() as tape:
            outputs = model(inputs, training=True)
            data_loss = patch_loss(outputs, labels, batch_size)
            decay = 0.5 * weight_decay * tf.add_n([tf.reduce_sum(tf.square(k)) for k in kernels])
            loss = data_loss + decay / replicas
        return tape.gradient(loss, variables), data_loss

    @tf.function
    def train_step(inputs, labels, learning_rate):
        gradients, data_loss = strategy.run(replica_gradients, args=(inputs, labels))
        gradients = [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in gradients]
        data_loss = strategy.reduce(tf.distribute.ReduceOp.SUM, data_loss, axis=None)
        if grad_clip is None:
            clipped, clipped_fraction = gradients, tf.constant(0.0)
        else:
            clipped, clipped_fraction = adjustable_clip(gradients, grad_clip / learning_rate)
        optimizer.apply(clipped, variables)
        return data_loss, clipped_fraction

    return train_step


def epoch_weights_path(checkpoint_dir: str, step: int) -> str:
    """Where `keep_epoch_weights` keeps the weights of the epoch that ends at `step`."""
    return os.path.join(checkpoint_dir, "weights", f"vdsr_{step:06d}.h5")


def write_json(path: str, value) -> None:
    """Writes `value` as JSON, atomically."""
    with atomic_path(path, suffix=".json") as temporary:
        with open(temporary, "w") as file:
            json.dump(value, file, indent=1)


class _StopRequest:
    """Turns SIGTERM into a clean stop after the current step."""

    def __init__(self):
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.requested = True

    def restore(self):
        signal.signal(signal.SIGTERM, self._previous)


def _load_record(paths: list[str], step: int, config: TrainConfig) -> dict:
    """The first training record found among `paths`, cut back to `step`, or a new one."""
    record = {"steps": 0, "wall_seconds": 0.0, "learning_rate": [], "validation": [], "training_loss": []}
    for path in paths:
        if os.path.isfile(path):
            with open(path) as file:
                record.update(json.load(file))
            break
    record["validation"] = [row for row in record["validation"] if row["step"] <= step]
    record["training_loss"] = [row for row in record["training_loss"] if row["step"] <= step]
    record["learning_rate"] = [row for row in record["learning_rate"] if row["from_step"] < step]
    record["config"] = asdict(config)
    return record


def _recorded_optimizer(record_path: str) -> str:
    """The optimizer of the run whose record this is (records before the option existed: SGD)."""
    if not os.path.isfile(record_path):
        return "sgd"
    with open(record_path) as file:
        return json.load(file).get("config", {}).get("optimizer", "sgd")


def train(config: TrainConfig, *, strategy: tf.distribute.Strategy | None = None) -> dict:
    """Trains (or resumes training) and returns the training record.

    State (weights, momentum, step) is checkpointed to
    `<checkpoint_dir>/state` every `save_every_minutes` and at each epoch end;
    the data order is a function of (seed, step), so resuming repeats nothing
    and skips nothing. `<checkpoint_dir>/vdsr.h5` always holds the weights of
    the latest save, in the format evaluation loads.

    Raises:
      ValueError: on inconsistent settings or an unusable training file.
      FloatingPointError: when the loss stops being finite (nothing is saved).
    """
    strategy = strategy or default_strategy()
    if config.batch_size < 1:
        raise ValueError(f"--batch_size must be positive, got {config.batch_size}")
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"--batch_size={config.batch_size} does not split across {strategy.num_replicas_in_sync} replicas"
        )
    if config.lr <= 0 or config.grad_clip <= 0:
        raise ValueError(f"--lr and --grad_clip must be positive, got {config.lr} and {config.grad_clip}")
    patches = TrainingPatches(config.train_h5)
    receptive_field = 2 * config.depth + 1
    if patches.patch_size < receptive_field:
        logging.warning(
            "patches are %dx%d, smaller than the %dx%d receptive field of depth %d",
            patches.patch_size,
            patches.patch_size,
            receptive_field,
            receptive_field,
            config.depth,
        )
    validation = {
        scale: prepare_test_images(list(config.validation_paths), scale) for scale in config.validation_scales
    }

    with strategy.scope():
        model = build_vdsr(
            depth=config.depth,
            width=config.width,
            residual=config.residual,
            seed=config.seed,
            precision=config.precision,
        )
        optimizer = make_optimizer(config.optimizer, learning_rate=config.lr, momentum=config.momentum)
        optimizer.build(model.trainable_variables)
        step_variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_variable)
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(config.checkpoint_dir, "state"), max_to_keep=config.keep_checkpoints
    )
    record_path = os.path.join(config.checkpoint_dir, RECORD_NAME)
    if manager.latest_checkpoint:
        state_optimizer = _recorded_optimizer(record_path)
        if state_optimizer != config.optimizer:
            raise ValueError(
                f"--optimizer={config.optimizer}: {config.checkpoint_dir} holds the state of a {state_optimizer} run; "
                f"start the {config.optimizer} run in a new --checkpoint_dir with --init_weights"
            )
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("resumed from %s at step %d", manager.latest_checkpoint, int(step_variable.numpy()))
    elif config.init_weights:
        weights, attributes = read_weights(config.init_weights)
        set_conv_weights(model, weights, source=config.init_weights)
        step_variable.assign(int(attributes.get("step", 0)))
        logging.info(
            "started from %s at step %d (optimizer state reset)", config.init_weights, int(step_variable.numpy())
        )

    train_step = make_train_step(
        model,
        optimizer,
        strategy,
        batch_size=config.batch_size,
        weight_decay=config.weight_decay,
        grad_clip=config.grad_clip if config.optimizer == "sgd" else None,
    )
    predict = make_predictor(model)
    writer = tf.summary.create_file_writer(config.log_dir)
    os.makedirs(config.checkpoint_dir, exist_ok=True)
    step = int(step_variable.numpy())
    # A run started from exported weights (say in a new session, where state/ is gone) carries on
    # the record that was saved beside those weights.
    record_sources = [record_path]
    if config.init_weights and not manager.latest_checkpoint:
        record_sources.append(os.path.join(os.path.dirname(config.init_weights), RECORD_NAME))
    record = _load_record(record_sources, step, config)
    wall_at_start = record["wall_seconds"]
    started = time.time()
    end = config.total_steps if not config.max_steps else min(config.total_steps, step + config.max_steps)
    decay_steps = config.lr_decay_epochs * config.steps_per_epoch

    saved_step = step
    epoch_losses = {"network": 0.0, "bicubic": 0.0}

    def close_epoch():
        """Records the epoch's training loss over the bicubic input's own loss (1 = no better than bicubic).

        A measure of progress on training data alone, so that settings can be
        compared without looking at a test set. After a resume it covers the
        steps of the epoch run since.
        """
        if epoch_losses["bicubic"] > 0:
            ratio = epoch_losses["network"] / epoch_losses["bicubic"]
            record["training_loss"].append({"step": step, "loss_over_bicubic": ratio})
        epoch_losses.update(network=0.0, bicubic=0.0)

    def save(epoch_end: bool = False):
        nonlocal saved_step
        manager.save(checkpoint_number=step)
        saved_step = step
        record["steps"] = step
        record["wall_seconds"] = wall_at_start + time.time() - started
        metadata = {"step": step, "source": "trained by vdsr_tf.train", "train_h5": os.path.basename(config.train_h5)}
        weights_paths = [os.path.join(config.checkpoint_dir, WEIGHTS_NAME)]
        if epoch_end and config.keep_epoch_weights:
            weights_paths.append(epoch_weights_path(config.checkpoint_dir, step))
        for path in weights_paths:
            save_weights(model, path, residual=config.residual, metadata=metadata)
        write_json(record_path, record)
        if record["validation"]:
            plot_validation_curve(record["validation"], os.path.join(config.checkpoint_dir, CURVE_NAME))

    def validate():
        row = {"step": step}
        with writer.as_default(step=step):
            for scale, images in validation.items():
                outputs = [predict(image.interpolated) for image in images]
                row[f"psnr_x{scale}"] = float(
                    np.mean([score(image, output, scale)[0] for image, output in zip(images, outputs)])
                )
                tf.summary.scalar(f"val/psnr_x{scale}", row[f"psnr_x{scale}"])
                if scale == min(validation):
                    first = images[0]
                    panel = np.concatenate(
                        [to_uint8_range(first.interpolated), to_uint8_range(outputs[0]), first.ground_truth], axis=1
                    )
                    tf.summary.image("val/bicubic_vdsr_truth", (panel / 255.0)[None, :, :, None].astype(np.float32))
        record["validation"].append(row)
        logging.info("step %d validation %s", step, {k: round(v, 3) for k, v in row.items() if k != "step"})

    stop = _StopRequest()
    last_save = time.time()
    if step == 0 and not record["validation"]:
        validate()
    try:
        while step < end and not stop.requested:
            epoch = step // config.steps_per_epoch
            epoch_end = min((epoch + 1) * config.steps_per_epoch, end)
            with tqdm(
                total=config.steps_per_epoch,
                initial=step - epoch * config.steps_per_epoch,
                desc=f"epoch {epoch + 1}/{config.epochs}",
                unit="step",
            ) as bar:
                while step < epoch_end and not stop.requested:
                    learning_rate = learning_rate_at(
                        step, base_lr=config.lr, decay_steps=decay_steps, decay_factor=config.lr_decay_factor
                    )
                    schedule_row = {"from_step": step, "lr": learning_rate, "optimizer": config.optimizer}
                    if not record["learning_rate"] or any(
                        record["learning_rate"][-1].get(key, "sgd") != schedule_row[key] for key in ("lr", "optimizer")
                    ):
                        record["learning_rate"].append(schedule_row)
                    inputs, labels = patches.batch(
                        batch_indices(step, batch_size=config.batch_size, count=patches.count, seed=config.seed)
                    )
                    optimizer.learning_rate = learning_rate
                    loss, clipped_fraction = train_step(
                        _distribute(strategy, inputs),
                        _distribute(strategy, labels),
                        tf.constant(learning_rate, tf.float32),
                    )
                    loss = float(loss)
                    if not math.isfinite(loss):
                        raise FloatingPointError(
                            f"training loss became {loss} at step {step + 1}; "
                            f"the checkpoint of step {saved_step} is kept"
                        )
                    bicubic_loss = float(patch_loss(inputs, labels, config.batch_size))
                    epoch_losses["network"] += loss
                    epoch_losses["bicubic"] += bicubic_loss
                    step += 1
                    step_variable.assign(step)
                    with writer.as_default(step=step):
                        tf.summary.scalar("train/loss", loss)
                        tf.summary.scalar("train/loss_over_bicubic", loss / max(bicubic_loss, 1e-12))
                        tf.summary.scalar("train/lr", learning_rate)
                        tf.summary.scalar("train/clipped_fraction", float(clipped_fraction))
                    bar.set_postfix(
                        loss=f"{loss:.4f}", lr=f"{learning_rate:g}", clipped=f"{float(clipped_fraction):.2f}"
                    )
                    bar.update(1)
                    if config.validate_every and step % config.validate_every == 0 and step % config.steps_per_epoch:
                        validate()
                    if time.time() - last_save > 60 * config.save_every_minutes:
                        save()
                        last_save = time.time()
            at_epoch_end = step % config.steps_per_epoch == 0 and step == epoch_end
            if at_epoch_end:
                close_epoch()
                validate()
            save(epoch_end=at_epoch_end)
            last_save = time.time()
    except KeyboardInterrupt:
        logging.info("interrupted at step %d; saving", step)
        save()
    finally:
        stop.restore()
        writer.flush()
        patches.close()
    return record
