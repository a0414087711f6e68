"""Fixtures shared by the tests; helpers that are not fixtures are in helpers.py."""

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def checkpoint_dir(tmp_path):
    """A folder holding a small (depth 3, width 4) vdsr.h5."""
    from vdsr_tf.model import build_vdsr, save_weights

    folder = tmp_path / "ck"
    save_weights(build_vdsr(depth=3, width=4, seed=0), str(folder / "vdsr.h5"), residual=True)
    return folder


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def tiny_data_dir(tmp_path):
    """A data folder in the project's layout: train/T91 with two colour images, one
    grayscale image and one corrupt file; test/Set5 with two small images."""
    generator = np.random.default_rng(5)
    train = tmp_path / "data" / "train" / "T91"
    train.mkdir(parents=True)
    smooth = np.cumsum(np.cumsum(generator.random((90, 100, 3)), axis=0), axis=1)
    image = (255 * smooth / smooth.max()).astype(np.uint8)
    Image.fromarray(image).save(train / "a.png")
    Image.fromarray(image[:70, :85].copy()).save(train / "b.png")
    Image.fromarray(image[:60, :50, 1].copy()).save(train / "c_gray.png")
    (train / "d_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    test = tmp_path / "data" / "test" / "Set5"
    test.mkdir(parents=True)
    Image.fromarray(image[:48, :60]).save(test / "x.png")
    Image.fromarray(image[20:68, 10:58]).save(test / "y.png")
    return tmp_path / "data"


@pytest.fixture
def tiny_training(tiny_data_dir, tmp_path):
    """A TrainConfig of a depth-3 network on patches of the tiny data folder: 4 epochs of 3 steps."""
    from vdsr_tf.config import TrainConfig
    from vdsr_tf.data import PatchSettings, generate_training_h5
    from vdsr_tf.images import list_images

    train_h5 = str(tmp_path / "train.h5")
    paths = list_images(str(tiny_data_dir / "train" / "T91"))
    generate_training_h5(paths, train_h5, settings=PatchSettings(patch_size=21, stride=10), seed=0, workers=1)
    return TrainConfig(
        train_h5=train_h5,
        checkpoint_dir=str(tmp_path / "run"),
        log_dir=str(tmp_path / "logs"),
        validation_paths=tuple(list_images(str(tiny_data_dir / "test" / "Set5"))),
        depth=3,
        width=8,
        steps_per_epoch=3,
        epochs=4,
        lr_decay_epochs=2,
        batch_size=8,
    )
