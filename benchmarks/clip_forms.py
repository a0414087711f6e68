"""How much each reading of the adjustable clip binds, measured on one training batch.

    python benchmarks/clip_forms.py --train_h5=data/train.h5 --weights=checkpoints/vdsr.h5

For He initialisation (seed 123, as training starts) and for the given weights,
per tensor: the gradient's L2 norm and largest element, and for theta in
{1e-3, 1e-4} and lr in {0.1 ... 1e-4}, the share of elements the value clip
changes, the share of tensors the norm clip changes, and whether the global
norm clip binds, each with the loss averaged over the batch (this project, the
authors' MatConvNet) and summed over it (jangsoopark's `tf.nn.l2_loss`: 64x
the gradient). Training data only.
"""

import sys

import numpy as np
import tensorflow as tf
from absl import app, flags

from vdsr_tf.data import TrainingPatches, batch_indices
from vdsr_tf.model import build_vdsr, conv_layers, load_vdsr
from vdsr_tf.step import patch_loss

flags.DEFINE_string("train_h5", "data/train.h5", "Patch file.")
flags.DEFINE_string("weights", "checkpoints/vdsr.h5", "Trained weights to measure beside He initialisation.")
flags.DEFINE_integer("batch_size", 64, "Patches in the batch.", lower_bound=1)
FLAGS = flags.FLAGS

THETAS = (1e-3, 1e-4)
LEARNING_RATES = (0.1, 0.01, 0.001, 1e-4)


def gradients(model, inputs, labels, batch_size):
    kernels = [layer.kernel for layer in conv_layers(model)]
    with tf.GradientTape() as tape:
        loss = patch_loss(model(inputs, training=True), labels, batch_size)
        loss += 0.5 * 1e-4 * tf.add_n([tf.reduce_sum(tf.square(k)) for k in kernels])
    return [g.numpy().astype(np.float64) for g in tape.gradient(loss, model.trainable_variables)]


def bind_table(grads, title):
    total = sum(g.size for g in grads)
    norms = np.array([np.linalg.norm(g) for g in grads])
    global_norm = np.sqrt(np.sum(norms**2))
    print(f"\n{title}: global norm {global_norm:.3g}")
    print("| theta | lr | bound theta/lr | value: elements clipped | norm: tensors clipped | global_norm binds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for theta in THETAS:
        for lr in LEARNING_RATES:
            bound = theta / lr
            elements = sum(int(np.sum(np.abs(g) > bound)) for g in grads) / total
            tensors = np.mean(norms > bound)
            print(
                f"| {theta:g} | {lr:g} | {bound:g} | {elements:.1%} | {tensors:.0%} | "
                f"{'yes' if global_norm > bound else 'no'} |"
            )


def tensor_table(grads, names, title):
    print(f"\n{title}, per tensor (loss averaged over the batch)")
    print("| tensor | elements | gradient L2 norm | largest element |")
    print("| --- | --- | --- | --- |")
    for name, g in zip(names, grads):
        print(f"| {name} | {g.size} | {np.linalg.norm(g):.3g} | {np.abs(g).max():.3g} |")


def main(argv):
    del argv
    try:
        print_tables()
    except ValueError as error:  # a missing patch or weights file
        sys.exit(f"error: {error}")


def print_tables():
    patches = TrainingPatches(FLAGS.train_h5)
    inputs, labels = patches.batch(batch_indices(0, batch_size=FLAGS.batch_size, count=patches.count, seed=123))
    models = {"He initialisation": build_vdsr(seed=123), FLAGS.weights: load_vdsr(FLAGS.weights)[0]}
    for title, model in models.items():
        names = [variable.path for variable in model.trainable_variables]
        grads = gradients(model, tf.constant(inputs), tf.constant(labels), FLAGS.batch_size)
        tensor_table(grads, names, title)
        bind_table(grads, f"{title}, loss averaged over the batch")
        bind_table([g * FLAGS.batch_size for g in grads], f"{title}, loss summed over the batch")


if __name__ == "__main__":
    app.run(main)
