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


def _good_shapes():
    kernels = [np.zeros((3, 3, 1, 64))] + [np.zeros((3, 3, 64, 64))] * 18 + [np.zeros((3, 3, 64))]
    return kernels, [np.zeros((64, 1))] * 19 + [np.zeros((1, 1))]


def test_the_file_named_is_the_file_read(tmp_path):
    scipy.io.savemat(str(tmp_path / "off.mat"), _fake_model(*_good_shapes()))
    assert len(read_matconvnet(str(tmp_path / "off.mat"))) == 20
    for path in (tmp_path / "off", tmp_path):  # scipy would read off.mat for "off"
        with pytest.raises(ValueError, match=f"{path}: no such file"):
            read_matconvnet(str(path))


def test_a_matlab_v73_file_says_how_to_save_it(tmp_path):
    path = tmp_path / "v73.mat"
    path.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116) + bytes(8) + b"\x00\x02IM" + bytes(384))
    with pytest.raises(ValueError, match="v73.mat: a MATLAB v7.3 file, which SciPy cannot read; save it again"):
        read_matconvnet(str(path))


@pytest.mark.parametrize("value, message", [("abc", "not numbers"), (np.nan, "not finite numbers")])
def test_a_layer_of_other_values_is_named(tmp_path, value, message):
    kernels, biases = _good_shapes()
    kernels[4] = np.full((3, 3, 64, 64), value, dtype=object if isinstance(value, str) else float)
    path = str(tmp_path / "odd.mat")
    scipy.io.savemat(path, _fake_model(kernels, biases))
    with pytest.raises(ValueError, match=f"odd.mat: layer 5 holds values that are {message}"):
        read_matconvnet(path)
