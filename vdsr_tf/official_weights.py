"""Import of the authors' released MatConvNet weights (VDSR_Official.mat)."""

import os

import numpy as np
import scipy.io

_DEPTH = 20
_WIDTH = 64


def read_matconvnet(path: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 20 (kernel, bias) pairs of VDSR_Official.mat, as float32 Keras Conv2D weights.

    The file holds `model.weight{1..20}` of shape (3, 3, in, out), the last
    stored squeezed as (3, 3, 64), and `model.bias{1..20}`. MatConvNet's
    `vl_nnconv` is a cross-correlation over (row, column), as TensorFlow's
    conv2d is, so kernels map over without flipping.

    Raises:
      ValueError: naming the file, if it is unreadable or not this model.
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    try:
        contents = scipy.io.loadmat(path, appendmat=False)
    except NotImplementedError:  # scipy reads up to MATLAB's -v7 format
        raise ValueError(f"{path}: a MATLAB v7.3 file, which SciPy cannot read; save it again with save -v7") from None
    except (OSError, ValueError, TypeError, IndexError, KeyError, scipy.io.matlab.MatReadError) as error:
        raise ValueError(f"{path}: not a readable .mat file ({error})") from None
    try:
        model = contents["model"][0, 0]
        kernels, biases = model["weight"][0], model["bias"][0]
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"{path}: no model.weight / model.bias cell arrays (not a VDSR MatConvNet model)") from None
    if len(kernels) != _DEPTH or len(biases) != _DEPTH:
        raise ValueError(f"{path}: expected {_DEPTH} weight and bias cells, got {len(kernels)} and {len(biases)}")
    weights = []
    for index, (kernel, bias) in enumerate(zip(kernels, biases)):
        fan_in = 1 if index == 0 else _WIDTH
        fan_out = 1 if index == _DEPTH - 1 else _WIDTH
        try:
            kernel, bias = np.asarray(kernel, dtype=np.float32), np.asarray(bias, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"{path}: layer {index + 1} holds values that are not numbers") from None
        if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
            raise ValueError(f"{path}: layer {index + 1} holds values that are not finite numbers")
        if kernel.shape == (3, 3, fan_in):
            kernel = kernel[..., None]
        if kernel.shape != (3, 3, fan_in, fan_out) or bias.shape != (fan_out,):
            raise ValueError(
                f"{path}: layer {index + 1} has shapes {kernel.shape}, {bias.shape}; "
                f"expected (3, 3, {fan_in}, {fan_out}), ({fan_out},)"
            )
        weights.append((kernel, bias))
    return weights
