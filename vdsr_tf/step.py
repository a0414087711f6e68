"""One training step: the loss, the clip, the optimizer and the update (paper sections 3.2, 3.3, 4.1).

The loss is 1/2 ||r - f(x)||^2 of each patch, summed over its pixels and
averaged over the batch (the paper's loss "averaged over the training set", and
MatConvNet's `cnn_train` normalisation, which the authors used), plus weight
decay (L2 on the kernels). A per-pixel mean instead makes the lr-0.1 steps
~1,681 times smaller, far too slow for the paper's 10,000-step schedule.

Adjustable gradient clipping bounds the gradient by theta / lr with the current
learning rate lr, so the largest step is theta whatever lr is. The paper says
"clip individual gradients to [-theta/lr, theta/lr]" and gives no theta; it has
three readings (`CLIP_FORMS`):
  value        every element, as the sentence reads (MatConvNet's per-element clip);
  norm         each tensor's L2 norm (jangsoopark/VDSR-TensorFlow's `clip_by_norm`);
  global_norm  the L2 norm of all gradients together (the PyTorch port's habit).
docs/training.md has the measurements that chose the default.

`optimizer="adam"` is not the paper's: Adam (unclipped; its lr is the step size
of every element) on the same loss, for continuing from the paper schedule's
weights. Measured at our weights, the last layer's bias has a gradient of ~0.9
and a middle kernel element one of ~8e-5, so an SGD lr small enough to be
stable on the first barely moves the second.
"""

import keras
import numpy as np
import tensorflow as tf

from vdsr_tf.config import CLIP_FORMS, OPTIMIZERS, require_choice
from vdsr_tf.model import conv_layers


def learning_rate_at(step: int, *, base_lr: float, decay_steps: int, decay_factor: float) -> float:
    """Step-wise schedule: base_lr * decay_factor ** (step // decay_steps)."""
    return base_lr * decay_factor ** (step // decay_steps)


def patch_loss(outputs, labels, batch_size: int):
    """1/2 the squared error summed over each patch's pixels, averaged over the batch (see the module doc)."""
    return 0.5 * tf.reduce_sum(tf.square(outputs - labels)) / batch_size


def _total_size(gradients: list) -> int:
    return sum(int(np.prod(gradient.shape)) for gradient in gradients)


def clip_gradients(form: str, gradients: list, bound) -> tuple[list, tf.Tensor]:
    """Clips `gradients` to `bound` (theta / lr) in one of `CLIP_FORMS`.

    Returns the clipped gradients and the share the clip changed: of the
    elements (value), of the tensors (norm), or 0 or 1 (global_norm).

    Raises:
      ValueError: naming --clip, for an unknown form.
    """
    require_choice("clip", form, CLIP_FORMS)
    if form == "value":
        clipped = [tf.clip_by_value(gradient, -bound, bound) for gradient in gradients]
        hit = tf.add_n([tf.reduce_sum(tf.cast(tf.abs(g) > bound, tf.float32)) for g in gradients])
        return clipped, hit / _total_size(gradients)
    if form == "norm":
        clipped = [tf.clip_by_norm(gradient, bound) for gradient in gradients]
        hit = tf.add_n([tf.cast(tf.norm(g) > bound, tf.float32) for g in gradients])
        return clipped, hit / len(gradients)
    clipped, norm = tf.clip_by_global_norm(gradients, bound)
    return clipped, tf.cast(norm > bound, tf.float32)


def make_optimizer(name: str, *, learning_rate: float, momentum: float) -> keras.optimizers.Optimizer:
    """SGD with momentum (the paper) or Adam (Keras defaults otherwise)."""
    require_choice("optimizer", name, OPTIMIZERS)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    return keras.optimizers.Adam(learning_rate=learning_rate)


def make_train_step(
    model,
    optimizer,
    strategy,
    *,
    batch_size: int,
    weight_decay: float,
    grad_clip: float | None,
    clip: str = "value",
    bias_lr_scale: float = 1.0,
):
    """The compiled training step: (inputs, labels, lr) -> (data loss, clipped share).

    Gradients are summed across replicas before the clip, so the clip acts on
    the gradient of the whole global batch, exactly as on one device.
    `grad_clip=None` applies the gradient unclipped (clipped share 0).
    `bias_lr_scale` multiplies every bias update (Caffe's and MatConvNet's 0.1
    `lr_mult` on biases): the applied change is scaled, which for SGD with
    momentum and for Adam equals a bias learning rate of lr * bias_lr_scale.
    The loss, the clip and the update run in float32 whatever the model's
    precision: bfloat16 has float32's exponent range, so unlike float16 it
    needs no loss scaling.
    """
    require_choice("clip", clip, CLIP_FORMS)
    variables = model.trainable_variables
    layers = conv_layers(model)
    kernels, biases = [layer.kernel for layer in layers], [layer.bias for layer in layers]
    replicas = strategy.num_replicas_in_sync

    def replica_gradients(inputs, labels):
        with tf.GradientTape() as tape:
            outputs = tf.cast(model(inputs, training=True), tf.float32)
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
            clipped, clipped_share = gradients, tf.constant(0.0)
        else:
            clipped, clipped_share = clip_gradients(clip, gradients, grad_clip / learning_rate)
        before = [tf.identity(bias) for bias in biases] if bias_lr_scale != 1 else []
        optimizer.apply(clipped, variables)
        for bias, previous in zip(biases, before):
            bias.assign(previous + bias_lr_scale * (bias - previous))
        return data_loss, clipped_share

    return train_step
