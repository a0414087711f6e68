import h5py
import numpy as np
import pytest

from vdsr_tf.color import rgb_to_y
from vdsr_tf.data import (
    PatchSettings,
    TrainingPatches,
    augment,
    batch_indices,
    count_image_patches,
    generate_training_h5,
    image_patches,
    patch_corners,
)
from vdsr_tf.images import bicubic_degrade, list_images, modcrop, read_image

SMALL = PatchSettings(scales=(2, 3, 4), patch_size=21, stride=14)


def test_augment_rotates_counter_clockwise_and_flips():
    image = np.array([[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(augment(image, rotation=0, flip="none"), image)
    # MATLAB imrotate(I, 90) turns counter-clockwise: the last column becomes the first row.
    np.testing.assert_array_equal(augment(image, rotation=90, flip="none"), [[3, 6], [2, 5], [1, 4]])
    np.testing.assert_array_equal(augment(image, rotation=0, flip="lr"), [[3, 2, 1], [6, 5, 4]])
    np.testing.assert_array_equal(augment(image, rotation=0, flip="ud"), [[4, 5, 6], [1, 2, 3]])
    np.testing.assert_array_equal(augment(image, rotation=90, flip="lr"), [[1, 4], [2, 5], [3, 6]])


def test_patch_corners_follow_matlab_loops():
    # for x = 1:stride:hei-size+1, for y = 1:stride:wid-size+1 (0-based here).
    assert patch_corners(50, 45, patch_size=21, stride=14) == [(0, 0), (0, 14), (14, 0), (14, 14), (28, 0), (28, 14)]
    assert patch_corners(20, 45, patch_size=21, stride=14) == []


@pytest.mark.parametrize("shape", [(90, 100, 3), (61, 47, 3), (41, 41), (30, 80, 3)])
@pytest.mark.parametrize(
    "settings",
    [
        SMALL,
        PatchSettings(),
        PatchSettings(rotations=(0, 90, 180, 270), flips=("none", "ud"), downsizes=(1.0, 0.7, 0.5)),
    ],
)
def test_counts_match_generated_patches(shape, settings):
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    inputs, labels, scales = image_patches(image, settings)
    assert len(inputs) == len(labels) == len(scales) == count_image_patches(shape[0], shape[1], settings)
    assert inputs.shape[1:] == (settings.patch_size, settings.patch_size, 1) and inputs.dtype == np.float32


def test_input_patch_is_the_bicubic_degradation_of_its_label_region():
    image = np.random.default_rng(2).integers(0, 256, (70, 64, 3), dtype=np.uint8)
    settings = PatchSettings(scales=(3,), rotations=(0,), flips=("none",), patch_size=21, stride=14)
    inputs, labels, scales = image_patches(image, settings)
    label_image = modcrop(rgb_to_y(image).astype(np.float64) / 255, 3)
    interpolated = bicubic_degrade(label_image, 3)
    corners = patch_corners(*label_image.shape, patch_size=21, stride=14)
    assert len(corners) == len(inputs) and set(scales) == {3}
    for (top, left), input_patch, label_patch in zip(corners, inputs, labels):
        region = (slice(top, top + 21), slice(left, left + 21))
        np.testing.assert_array_equal(label_patch[:, :, 0], label_image[region].astype(np.float32))
        np.testing.assert_array_equal(input_patch[:, :, 0], interpolated[region].astype(np.float32))


def test_an_image_smaller_than_a_scale_yields_no_patch_of_it():
    """modcrop by 4 leaves nothing of 3 rows, which imresize refuses: the image's other scales still count."""
    image = np.random.default_rng(4).integers(0, 256, (3, 60, 3), dtype=np.uint8)
    settings = PatchSettings(scales=(2, 4), rotations=(0, 90), flips=("none",), patch_size=2, stride=2)
    inputs, _, scales = image_patches(image, settings)
    assert len(inputs) == count_image_patches(3, 60, settings) > 0 and 2 in scales


def test_rotated_patches_come_from_the_rotated_image():
    image = np.random.default_rng(3).integers(0, 256, (42, 84, 3), dtype=np.uint8)
    settings = PatchSettings(scales=(2,), rotations=(90,), flips=("none",), patch_size=42, stride=42)
    _, labels, _ = image_patches(image, settings)
    expected = np.rot90(rgb_to_y(image)).astype(np.float64) / 255
    np.testing.assert_array_equal(labels[0, :, :, 0], expected[:42, :42].astype(np.float32))
    np.testing.assert_array_equal(labels[1, :, :, 0], expected[42:84, :42].astype(np.float32))


def test_generated_file_holds_every_patch_once_shuffled(tiny_data_dir, tmp_path):
    paths = list_images(str(tiny_data_dir / "train" / "T91"))
    output = str(tmp_path / "train.h5")
    summary = generate_training_h5(paths, output, settings=SMALL, seed=9)
    assert summary["images"] == 3 and [p.split("/")[-1] for p in summary["skipped"]] == ["d_corrupt.png"]
    expected = [image_patches(read_image(p), SMALL) for p in paths if "corrupt" not in p]
    expected_labels = np.concatenate([labels for _, labels, _ in expected])
    expected_inputs = np.concatenate([inputs for inputs, _, _ in expected])
    with h5py.File(output, "r") as file:
        assert file.attrs["skipped_images"] == 1 and file.attrs["patch_size"] == 21
        data, label, scale = file["data"][()], file["label"][()], file["scale"][()]
    assert data.shape == expected_inputs.shape == (summary["patches"], 21, 21, 1)
    assert np.bincount(scale).tolist() == np.bincount(np.concatenate([s for _, _, s in expected])).tolist()

    # Same patches as a multiset, but not in generation order.
    def key(array):
        return np.lexsort(array.reshape(len(array), -1).T)

    np.testing.assert_array_equal(data[key(data)], expected_inputs[key(expected_inputs)])
    np.testing.assert_array_equal(label[key(label)], expected_labels[key(expected_labels)])
    assert not np.array_equal(label, expected_labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "train.h5"]
    patches = TrainingPatches(output)
    np.testing.assert_array_equal(patches.scales[[0, 5]], scale[[0, 5]])
    patches.close()


def test_no_patches_is_an_error(tmp_path, tiny_data_dir):
    paths = list_images(str(tiny_data_dir / "train" / "T91"))
    with pytest.raises(ValueError, match="no training patches"):
        generate_training_h5(paths, str(tmp_path / "x.h5"), settings=PatchSettings(patch_size=500), seed=0)
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize(
    "kwargs", [{"scales": (1,)}, {"rotations": (45,)}, {"flips": ("diagonal",)}, {"downsizes": (1.5,)}, {"stride": 0}]
)
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        PatchSettings(**kwargs)


def test_wrong_layout_is_refused(tmp_path):
    path = str(tmp_path / "wrong.h5")
    with h5py.File(path, "w") as file:
        file["data"] = np.zeros((4, 41, 41, 1), np.float32)
        file["label"] = np.zeros((4, 41, 41, 3), np.float32)
    with pytest.raises(ValueError, match="wrong.h5"):
        TrainingPatches(path)
    with h5py.File(path, "w") as file:
        file["data"] = file["label"] = np.zeros((4, 41, 41, 1), np.float32)
    patches = TrainingPatches(path)
    assert patches.scales is None and patches.count == 4
    patches.close()
    with h5py.File(path, "w") as file:
        file["inputs"] = np.zeros(3)
    with pytest.raises(ValueError, match="expected datasets 'data' and 'label'"):
        TrainingPatches(path)
    (tmp_path / "text.h5").write_text("x")
    with pytest.raises(ValueError, match="text.h5: not an HDF5 file"):
        TrainingPatches(str(tmp_path / "text.h5"))


def test_batches_walk_a_new_permutation_each_pass():
    count, batch = 12, 4
    first_pass = np.concatenate([batch_indices(step, batch_size=batch, count=count, seed=1) for step in range(3)])
    second_pass = np.concatenate([batch_indices(step, batch_size=batch, count=count, seed=1) for step in range(3, 6)])
    assert sorted(first_pass) == sorted(second_pass) == list(range(count))
    assert not np.array_equal(first_pass, second_pass)
    np.testing.assert_array_equal(batch_indices(4, batch_size=batch, count=count, seed=1), second_pass[4:8])
    # A batch that straddles two passes takes the end of one and the start of the next.
    straddle = batch_indices(1, batch_size=8, count=12, seed=1)
    np.testing.assert_array_equal(straddle, np.concatenate([first_pass[8:], second_pass[:4]]))
