import numpy as np
import pytest
import scipy.io
from helpers import OFFICIAL_WEIGHTS, requires_shared

from vdsr_tf.model import build_vdsr, conv_layers, load_vdsr, save_weights, set_conv_weights
from vdsr_tf.official_weights import read_matconvnet


@requires_shared
def test_import_round_trip(tmp_path):
    weights = read_matconvnet(OFFICIAL_WEIGHTS)
    assert len(weights) == 20
    assert weights[0][0].shape == (3, 3, 1, 64) and weights[-1][0].shape == (3, 3, 64, 1)
    model = build_vdsr()
    set_conv_weights(model, weights, source="official")
    path = str(tmp_path / "vdsr.h5")
    save_weights(model, path, residual=True)
    loaded, _ = load_vdsr(path)
    for (kernel, bias), layer in zip(weights, conv_layers(loaded)):
        np.testing.assert_array_equal(layer.get_weights()[0], kernel)
        np.testing.assert_array_equal(layer.get_weights()[1], bias)


def _fake_model(kernels, biases):
    cells_w = np.empty((1, len(kernels)), dtype=object)
    cells_b = np.empty((1, len(biases)), dtype=object)
    for index, (kernel, bias) in enumerate(zip(kernels, biases)):
        cells_w[0, index], cells_b[0, index] = kernel, bias
    return {"model": {"weight": cells_w, "bias": cells_b}}


def test_wrong_shapes_are_reported(tmp_path):
    kernels = [np.zeros((3, 3, 1, 64))] + [np.zeros((3, 3, 64, 64))] * 18 + [np.zeros((3, 3, 64, 2))]
    biases = [np.zeros((64, 1))] * 19 + [np.zeros((1, 1))]
    path = str(tmp_path / "bad.mat")
    scipy.io.savemat(path, _fake_model(kernels, biases))
    with pytest.raises(ValueError, match="bad.mat: layer 20"):
        read_matconvnet(path)


def test_wrong_depth_is_reported(tmp_path):
    path = str(tmp_path / "short.mat")
    scipy.io.savemat(path, _fake_model([np.zeros((3, 3, 1, 64))] * 3, [np.zeros((64, 1))] * 3))
    with pytest.raises(ValueError, match="short.mat: expected 20"):
        read_matconvnet(path)


def test_not_a_vdsr_mat_file(tmp_path):
    path = str(tmp_path / "other.mat")
    scipy.io.savemat(path, {"x": np.zeros(3)})
    with pytest.raises(ValueError, match="other.mat: no model.weight"):
        read_matconvnet(path)


def test_not_a_mat_file(tmp_path):
    path = tmp_path / "text.mat"
    path.write_text("hello")
    with pytest.raises(ValueError, match="text.mat"):
        read_matconvnet(str(path))
