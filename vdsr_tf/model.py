"""The VDSR network and its weights file.

Paper section 3.1: `depth` 3x3 convolutions, `width` filters, zero padding,
ReLU after all but the last; the output adds the input back (residual
learning). With depth 20 and width 64 it has 665,921 parameters.
"""

import os

import h5py
import keras
import numpy as np
import tensorflow as tf

from vdsr_tf.atomic import atomic_path

WEIGHTS_FORMAT = "vdsr_tf.weights/1"
FLOAT32_LEADING_LAYERS = 2  # of inference's mixed bfloat16 model; see build_vdsr
TRAINING_FLOAT32_LEADING_LAYERS = 1


def _he_normal(seed: int | None, index: int) -> keras.initializers.Initializer:
    """He et al. 2015 initialisation, as the paper uses (section 4.1)."""
    return keras.initializers.HeNormal(seed=None if seed is None else seed + index)


def build_vdsr(
    *,
    depth: int = 20,
    width: int = 64,
    residual: bool = True,
    seed: int | None = None,
    precision: str = "float32",
    float32_leading_layers: int = FLOAT32_LEADING_LAYERS,
) -> keras.Model:
    """Keras functional VDSR taking (N, H, W, 1) float32 luminance in [0, 1] of any size.

    Args:
      depth: number of convolution layers (paper: 20).
      width: filters of every hidden layer (paper: 64).
      residual: add the input to the last convolution (paper); False is the
        non-residual network of the paper's Table 1.
      seed: seed of the He-normal initialisation (layer i uses seed + i); None
        draws from Keras's global generator.
      precision: "float32", or "bfloat16" for the mixed model: the middle
        convolutions compute in bfloat16 (Keras `mixed_bfloat16`, float32
        weights); the first `float32_leading_layers` (by default two, whose
        inputs are the image and its first features), the last one and the
        skip-add stay float32, as does the output. Measured on training patches with the
        official weights, keeping the second convolution in float32 too halves
        the output's deviation from float32 (RMS 0.46 -> 0.20 of 255 levels,
        largest 11 -> 3.6); every layer in bfloat16 costs 0.15 dB on Set5 x4.
      float32_leading_layers: how many leading convolutions stay float32 in
        the mixed model. Training passes TRAINING_FLOAT32_LEADING_LAYERS (conv1
        alone): a step needs no output accurate to a level of 255, its loss,
        clip and update are float32 anyway, and conv2 in float32 made the
        bfloat16 step 18% slower on AMX (docs/training.md, "The recipe").
    """
    if depth < 2:
        raise ValueError(f"depth must be at least 2, got {depth}")
    if width < 1:
        raise ValueError(f"width must be positive, got {width}")
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be float32 or bfloat16, got {precision}")
    if float32_leading_layers < 1:
        raise ValueError(f"float32_leading_layers must be at least 1 (the image's layer), got {float32_leading_layers}")
    middle_policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    inputs = keras.Input(shape=(None, None, 1), name="interpolated")
    features = inputs
    for index in range(depth - 1):
        features = keras.layers.Conv2D(
            width,
            3,
            padding="same",
            activation="relu",
            kernel_initializer=_he_normal(seed, index),
            name=f"conv{index + 1}",
            dtype=middle_policy if index >= float32_leading_layers else "float32",
        )(features)
    residual_image = keras.layers.Conv2D(
        1, 3, padding="same", kernel_initializer=_he_normal(seed, depth - 1), name=f"conv{depth}", dtype="float32"
    )(features)
    outputs = keras.layers.Add(name="skip", dtype="float32")([inputs, residual_image]) if residual else residual_image
    return keras.Model(inputs, outputs, name=f"vdsr{depth}")


def conv_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def save_weights(model: keras.Model, path: str, *, residual: bool, metadata: dict | None = None) -> None:
    """Writes the kernels and biases to an HDF5 file, atomically.

    Layout: datasets `kernel_NN` (3, 3, in, out) and `bias_NN` for NN = 01..depth,
    attributes `format`, `depth`, `width`, `residual` and whatever `metadata`
    holds (for example the training step). The file is written beside `path`
    and renamed into place, so a crash never leaves a half-written file.
    """
    layers = conv_layers(model)
    with atomic_path(path, suffix=".h5") as temporary:
        with h5py.File(temporary, "w") as file:
            file.attrs["format"] = WEIGHTS_FORMAT
            file.attrs["depth"] = len(layers)
            file.attrs["width"] = layers[0].filters
            file.attrs["residual"] = residual
            for key, value in (metadata or {}).items():
                file.attrs[key] = value
            for index, layer in enumerate(layers, start=1):
                kernel, bias = layer.get_weights()
                file.create_dataset(f"kernel_{index:02d}", data=kernel.astype(np.float32))
                file.create_dataset(f"bias_{index:02d}", data=bias.astype(np.float32))


def _checked_depth(path: str, attributes: dict) -> int:
    """The depth of the network a weights file's attributes describe, each checked (ValueError naming the file)."""
    found = attributes.get("format")
    if found != WEIGHTS_FORMAT:
        why = "no format attribute" if found is None else f"format {found}, expected {WEIGHTS_FORMAT}"
        raise ValueError(f"{path}: not a vdsr_tf weights file ({why})")
    missing = [name for name in ("depth", "width", "residual") if name not in attributes]
    if missing:
        raise ValueError(f"{path}: not a whole vdsr_tf weights file (no {', '.join(missing)} attribute)")
    depth, width, residual = attributes["depth"], attributes["width"], attributes["residual"]
    step = attributes.get("step", 0)
    whole = all(isinstance(value, (int, np.integer)) for value in (depth, width, step))
    if not whole or depth < 2 or width < 1 or step < 0 or not isinstance(residual, (bool, np.bool_)):
        raise ValueError(
            f"{path}: its attributes describe no VDSR network (depth {depth}, width {width}, residual {residual}, "
            f"step {step})"
        )
    return int(depth)


def _checked_array(file: h5py.File, name: str, path: str) -> np.ndarray:
    entry = file.get(name)
    if not isinstance(entry, h5py.Dataset):
        raise ValueError(f"{path}: unreadable weights file (no array {name})")
    values = entry[()]
    if not (isinstance(values, np.ndarray) and values.dtype.kind == "f" and np.isfinite(values).all()):
        raise ValueError(f"{path}: {name} holds values that are not finite numbers")
    return values


def read_weights(path: str) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict]:
    """Reads a file written by `save_weights`: ([(kernel, bias), ...], attributes).

    Raises:
      ValueError: naming the file, if it is missing or not a VDSR weights file, or holds a value
        that is not a finite number (such weights would enlarge to garbage).
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such weights file")
    try:
        with h5py.File(path, "r") as file:
            attributes = {key: file.attrs[key] for key in file.attrs}
            depth = _checked_depth(path, attributes)
            weights = [
                (_checked_array(file, f"kernel_{index:02d}", path), _checked_array(file, f"bias_{index:02d}", path))
                for index in range(1, depth + 1)
            ]
    except OSError as error:
        raise ValueError(f"{path}: unreadable weights file ({error})") from None
    return weights, attributes


def average_weights(paths: list[str]) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[dict]]:
    """Element-wise mean of the kernels and biases of several weights files of one network.

    Stochastic weight averaging (Izmailov et al. 2018): the weights a run saves
    at a constant learning rate scatter around a valley; their mean lies nearer
    its floor than any of them (measured on our Adam run, docs/training.md, "Beyond the
    paper's schedule"). Returns the mean and the attributes of each file.

    Raises:
      ValueError: naming the file, if one is unreadable or holds another network.
    """
    if not paths:
        raise ValueError("no weights files to average")
    sums, first = read_weights(paths[0])
    sums = [(kernel.astype(np.float64), bias.astype(np.float64)) for kernel, bias in sums]
    all_attributes = [first]
    for path in paths[1:]:
        weights, attributes = read_weights(path)
        same_shapes = [(k.shape, b.shape) for k, b in weights] == [(k.shape, b.shape) for k, b in sums]
        if not same_shapes or bool(attributes["residual"]) != bool(first["residual"]):
            raise ValueError(f"{path}: holds another network than {paths[0]}")
        sums = [(kernel_sum + kernel, bias_sum + bias) for (kernel_sum, bias_sum), (kernel, bias) in zip(sums, weights)]
        all_attributes.append(attributes)
    mean = [((kernel / len(paths)).astype(np.float32), (bias / len(paths)).astype(np.float32)) for kernel, bias in sums]
    return mean, all_attributes


def load_vdsr(path: str, *, expected_depth: int | None = None, precision: str = "float32") -> tuple[keras.Model, dict]:
    """Builds the network a weights file describes, in `precision` (see `build_vdsr`), and loads it.

    Raises:
      ValueError: naming the file, if it is unreadable, inconsistent, or of
        another depth than `expected_depth`.
    """
    weights, attributes = read_weights(path)
    depth, width = int(attributes["depth"]), int(attributes["width"])
    if expected_depth is not None and depth != expected_depth:
        raise ValueError(f"{path}: checkpoint has depth {depth}, but --depth={expected_depth} was asked for")
    model = build_vdsr(depth=depth, width=width, residual=bool(attributes["residual"]), precision=precision)
    set_conv_weights(model, weights, source=path)
    return model, attributes


def set_conv_weights(model: keras.Model, weights, *, source: str) -> None:
    layers = conv_layers(model)
    if len(weights) != len(layers):
        raise ValueError(f"{source}: holds {len(weights)} layers, the model has {len(layers)}")
    for index, (layer, (kernel, bias)) in enumerate(zip(layers, weights), start=1):
        expected = [tuple(variable.shape) for variable in layer.weights]
        if [kernel.shape, bias.shape] != expected:
            raise ValueError(
                f"{source}: layer {index} has shapes {kernel.shape}, {bias.shape}; "
                f"expected {expected[0]}, {expected[1]}"
            )
        layer.set_weights([kernel, bias])


def make_predictor(model):
    """A compiled function: float32 HxW interpolated Y in [0, 1] -> HxW network output (not clipped).

    One trace serves every image size. TensorFlow's out-of-memory error is raised as MemoryError,
    which the callers (enlarging, the web page) report per file.
    """

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)], reduce_retracing=True)
    def predict(interpolated):
        return model(interpolated[None, :, :, None], training=False)[0, :, :, 0]

    def run(interpolated):
        try:
            return predict(tf.constant(interpolated, tf.float32)).numpy()
        except tf.errors.ResourceExhaustedError:
            raise MemoryError from None

    return run
