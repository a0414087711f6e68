import h5py
import numpy as np
import pytest

from vdsr_tf.model import average_weights, build_vdsr, conv_layers, load_vdsr, read_weights, save_weights


def test_paper_network_has_665921_parameters():
    # 3*3*1*64 + 64, then 18 x (3*3*64*64 + 64), then 3*3*64*1 + 1.
    assert 640 + 18 * 36928 + 577 == 665921
    assert build_vdsr().count_params() == 665921


def test_zero_residual_returns_the_input(rng):
    model = build_vdsr(depth=5, width=8, seed=1)
    last = conv_layers(model)[-1]
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    image = rng.random((1, 13, 17, 1)).astype(np.float32)
    np.testing.assert_array_equal(model(image).numpy(), image)


def test_any_input_size_keeps_its_size():
    model = build_vdsr(depth=3, width=4, seed=0)
    assert model(np.zeros((2, 19, 7, 1), np.float32)).shape == (2, 19, 7, 1)


def test_non_residual_network_has_no_skip(rng):
    model = build_vdsr(depth=3, width=4, residual=False, seed=0)
    last = conv_layers(model)[-1]
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    assert np.all(model(rng.random((1, 8, 8, 1)).astype(np.float32)).numpy() == 0)


def test_seed_makes_initialisation_repeatable():
    first, second = build_vdsr(depth=3, width=4, seed=7), build_vdsr(depth=3, width=4, seed=7)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weights_file_round_trip(tmp_path, rng):
    model = build_vdsr(depth=4, width=6, seed=3)
    path = str(tmp_path / "vdsr.h5")
    save_weights(model, path, residual=True, metadata={"step": 42})
    loaded, attributes = load_vdsr(path)
    assert attributes["step"] == 42 and attributes["depth"] == 4
    image = rng.random((1, 9, 9, 1)).astype(np.float32)
    np.testing.assert_array_equal(loaded(image).numpy(), model(image).numpy())
    assert [p.name for p in tmp_path.iterdir()] == ["vdsr.h5"]  # no temporary left behind


def test_checkpoint_of_another_depth_is_refused(tmp_path):
    path = str(tmp_path / "vdsr.h5")
    save_weights(build_vdsr(depth=4, width=6), path, residual=True)
    with pytest.raises(ValueError, match="depth 4.*--depth=20"):
        load_vdsr(path, expected_depth=20)


def test_inconsistent_weights_file_names_the_file(tmp_path):
    path = str(tmp_path / "vdsr.h5")
    save_weights(build_vdsr(depth=3, width=6), path, residual=True)
    with h5py.File(path, "a") as file:
        del file["kernel_02"]
        file["kernel_02"] = np.zeros((3, 3, 5, 6), np.float32)
    with pytest.raises(ValueError, match="vdsr.h5: layer 2"):
        load_vdsr(path)


@pytest.mark.parametrize("content", [b"", b"not an hdf5 file"])
def test_corrupt_weights_file(tmp_path, content):
    path = tmp_path / "vdsr.h5"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="vdsr.h5"):
        read_weights(str(path))


def _drop_residual(file):
    del file.attrs["residual"]


def _kernel_as_group(file):
    del file["kernel_02"]
    file.create_group("kernel_02")


def _nan_kernel(file):
    kernel = file["kernel_02"][()]
    kernel[0, 0, 0, 0] = np.nan
    file["kernel_02"][...] = kernel


@pytest.mark.parametrize(
    "damage, message",
    [
        (_drop_residual, "not a whole vdsr_tf weights file (no residual attribute)"),
        (lambda file: file.attrs.__setitem__("format", "vdsr_tf.weights/99"), "not a vdsr_tf weights file (format"),
        (lambda file: file.attrs.__setitem__("depth", "abc"), "its attributes describe no VDSR network (depth abc"),
        (lambda file: file.attrs.__setitem__("depth", 0), "its attributes describe no VDSR network (depth 0"),
        (lambda file: file.attrs.__setitem__("step", "abc"), "step abc)"),
        (_kernel_as_group, "unreadable weights file (no array kernel_02)"),
        (_nan_kernel, "kernel_02 holds values that are not finite numbers"),
    ],
)
def test_a_damaged_weights_file_is_refused_naming_it(tmp_path, damage, message):
    path = str(tmp_path / "vdsr.h5")
    save_weights(build_vdsr(depth=3, width=4, seed=0), path, residual=True, metadata={"step": 5})
    with h5py.File(path, "a") as file:
        damage(file)
    with pytest.raises(ValueError) as error:
        read_weights(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_missing_weights_file(tmp_path):
    with pytest.raises(ValueError, match="no such weights file"):
        read_weights(str(tmp_path / "absent.h5"))


def test_average_weights_is_the_element_wise_mean(tmp_path):
    paths = [str(tmp_path / f"vdsr_{seed}.h5") for seed in (1, 2, 3)]
    for seed, path in zip((1, 2, 3), paths):
        save_weights(build_vdsr(depth=3, width=4, seed=seed), path, residual=True, metadata={"step": seed * 10})
    mean, attributes = average_weights(paths)
    every = [read_weights(path)[0] for path in paths]
    for layer, (kernel, bias) in enumerate(mean):
        np.testing.assert_allclose(kernel, np.mean([weights[layer][0] for weights in every], axis=0), atol=1e-6)
        np.testing.assert_allclose(bias, np.mean([weights[layer][1] for weights in every], axis=0), atol=1e-6)
    assert [row["step"] for row in attributes] == [10, 20, 30]
    assert not np.allclose(mean[0][0], every[0][0][0])


def test_average_of_different_networks_names_the_odd_file(tmp_path):
    same, other = str(tmp_path / "same.h5"), str(tmp_path / "other.h5")
    save_weights(build_vdsr(depth=3, width=4), same, residual=True)
    save_weights(build_vdsr(depth=3, width=5), other, residual=True)
    with pytest.raises(ValueError, match="other.h5: holds another network"):
        average_weights([same, other])
