"""A TensorFlow SavedModel that enlarges RGB uint8 images, the whole colour pipeline in the graph.

TF Serving runs graphs, not NumPy, so the MATLAB bicubic resize and the BT.601
colour conversion are expressed here in TensorFlow ops. The NumPy functions in
`vdsr_tf.imresize` and `vdsr_tf.color` remain the reference (and the colour
constants are theirs); tests/test_export.py checks the two paths agree.
"""

import os

import tensorflow as tf
from absl import logging

from vdsr_tf.atomic import atomic_folder, remove_leftover_folders
from vdsr_tf.color import RGB_TO_YCBCR, YCBCR_OFFSET, YCBCR_TO_RGB
from vdsr_tf.imresize import KERNEL_WIDTH
from vdsr_tf.infer import MAX_SCALE


def _cubic(x):
    absx = tf.abs(x)
    absx2, absx3 = absx * absx, absx * absx * absx
    near = tf.cast(absx <= 1, x.dtype)
    far = tf.cast((absx > 1) & (absx <= 2), x.dtype)
    return (1.5 * absx3 - 2.5 * absx2 + 1) * near + (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * far


def _resize_matrix(in_length, out_length):
    """(out_length, in_length) float64 matrix of MATLAB `imresize` bicubic along one dimension."""
    scale = tf.cast(out_length, tf.float64) / tf.cast(in_length, tf.float64)
    shrink = tf.minimum(scale, 1.0)
    kernel_width = KERNEL_WIDTH / shrink
    u = tf.range(1, out_length + 1, dtype=tf.float64) / scale + 0.5 * (1 - 1 / scale)
    left = tf.floor(u - kernel_width / 2)
    taps = tf.cast(tf.math.ceil(kernel_width), tf.int32) + 2
    indices = left[:, None] + tf.range(taps, dtype=tf.float64)[None, :]
    weights = shrink * _cubic(shrink * (u[:, None] - indices))
    weights /= tf.reduce_sum(weights, axis=1, keepdims=True)
    period = 2 * in_length
    folded = tf.math.floormod(tf.cast(indices, tf.int32) - 1, period)
    mirrored = tf.where(folded < in_length, folded, period - 1 - folded)
    rows = tf.broadcast_to(tf.range(out_length)[:, None], tf.shape(mirrored))
    coordinates = tf.stack([tf.reshape(rows, [-1]), tf.reshape(mirrored, [-1])], axis=1)
    return tf.scatter_nd(coordinates, tf.reshape(weights, [-1]), [out_length, in_length])


def tf_imresize(image, out_height, out_width):
    """MATLAB bicubic `imresize(image, [out_height, out_width])` of an HxWxC float64 tensor."""
    shape = tf.shape(image)
    rows = _resize_matrix(shape[0], out_height)
    columns = _resize_matrix(shape[1], out_width)
    return tf.einsum("oh,hwc,pw->opc", rows, image, columns)


def decimal_scale(scale):
    """The float64 of the shortest decimal that rounds to the float32 `scale` (1.2, not 1.2000000477).

    The command line's --scale=1.2 is the float64 nearest 1.2, and the output size ceil(h * scale)
    follows MATLAB's double arithmetic; with the float32 itself, 750 rows at x1.2 would give 901
    rows instead of 900. Eight decimals always round back to a float32 in (1, 8]. The decimals go
    through text because a graph may rewrite round(x * 10^d) / 10^d into a product that misses the
    nearest float64.
    """
    decimals = [tf.strings.as_string(scale, precision=digits) for digits in range(9)]
    candidates = tf.strings.to_number(tf.stack(decimals), tf.float64)
    return candidates[tf.where(tf.equal(tf.cast(candidates, tf.float32), scale))[0, 0]]  # the shortest


class Enlarger(tf.Module):
    """Serving module: `serve(image, scale)` -> enlarged image, both HxWx3 uint8 RGB.

    `scale` must lie in (1, MAX_SCALE], as the command line's --scale; outside it `serve` raises
    InvalidArgumentError (a scale of 1000 would otherwise try to allocate a million-fold image).
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([], tf.float32)])
    def serve(self, image, scale):
        message = f"scale must lie in (1, {MAX_SCALE:g}]"
        # A loaded SavedModel does not hold its inputs to the signature's shapes: a batch (TF Serving's
        # row form) would otherwise reach the colour conversion and fail there, naming a reshape.
        scale = tf.ensure_shape(scale, [])
        shape = tf.shape(image)
        checks = [
            tf.debugging.assert_greater(scale, 1.0, message=message),
            tf.debugging.assert_less_equal(scale, MAX_SCALE, message=message),
            tf.debugging.assert_equal(shape[-1], 3, message="image must be HxWx3 uint8 RGB (no alpha, not gray)"),
            tf.debugging.assert_positive(shape[:2], message="image must be at least 1x1"),
        ]
        # The checks must run before the sizes are computed from the scale, or a NaN reaches tf.range first.
        with tf.control_dependencies(checks):
            image, scale = tf.ensure_shape(image, [None, None, 3]), decimal_scale(scale)
        out_height = tf.cast(tf.math.ceil(tf.cast(shape[0], tf.float64) * scale), tf.int32)
        out_width = tf.cast(tf.math.ceil(tf.cast(shape[1], tf.float64) * scale), tf.int32)
        rgb = tf.cast(image, tf.float64) / 255
        ycbcr = (tf.tensordot(rgb, tf.constant(RGB_TO_YCBCR.T), 1) + YCBCR_OFFSET) / 255
        ycbcr = tf_imresize(ycbcr, out_height, out_width)
        luminance = self.model(tf.cast(ycbcr[None, :, :, :1], tf.float32), training=False)[0]
        ycbcr = tf.concat([tf.cast(luminance, tf.float64), ycbcr[:, :, 1:]], axis=2)
        rgb = tf.tensordot(ycbcr * 255 - YCBCR_OFFSET, tf.constant(YCBCR_TO_RGB.T), 1)
        return tf.cast(tf.floor(tf.clip_by_value(rgb, 0, 1) * 255 + 0.5), tf.uint8)


def export_saved_model(model, directory: str) -> None:
    """Writes the SavedModel with the `serving_default` signature (image, scale) -> enlarged image.

    It is written beside `directory` and then put in its place, so that a failure or Ctrl-C leaves
    no half-written SavedModel, nor a mix with the one that was there.
    """
    for leftover in remove_leftover_folders(os.path.dirname(os.path.abspath(directory))):
        logging.info("removed %s, left by an interrupted export", leftover)
    enlarger = Enlarger(model)
    with atomic_folder(directory) as temporary:
        tf.saved_model.save(enlarger, temporary, signatures={"serving_default": enlarger.serve})
