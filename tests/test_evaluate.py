import os

import numpy as np
import pytest
from helpers import OFFICIAL_WEIGHTS, SHARED_DATASETS, requires_shared
from PIL import Image

from vdsr_tf.evaluate import evaluate, format_table, prepare_test_images
from vdsr_tf.images import dataset_paths
from vdsr_tf.model import build_vdsr, conv_layers, set_conv_weights
from vdsr_tf.official_weights import read_matconvnet


@requires_shared
def test_set5_x2_with_official_weights_reproduces_the_paper(tmp_path):
    model = build_vdsr()
    set_conv_weights(model, read_matconvnet(OFFICIAL_WEIGHTS), source="official")
    (row,) = evaluate(model, data_dir=SHARED_DATASETS, datasets=["Set5"], scales=[2], save_dir=str(tmp_path))
    # Paper Table 3 / ../shared/README.md: bicubic 33.66 / 0.9299, VDSR 37.53 / 0.9587.
    assert row["images"] == 5
    assert row["psnr_bicubic"] == pytest.approx(33.66, abs=0.02)
    assert row["ssim_bicubic"] == pytest.approx(0.9299, abs=0.001)
    assert row["psnr"] == pytest.approx(37.53, abs=0.03)
    assert row["ssim"] == pytest.approx(0.9587, abs=0.001)
    saved = sorted(os.listdir(tmp_path / "Set5"))
    assert saved == ["baby_x2.png", "bird_x2.png", "butterfly_x2.png", "head_x2.png", "woman_x2.png"]
    assert "| Set5 | x2 | 5 | 33.66 / 0.9299 | 37.53 / 0.9587 |" in format_table([row])


def _zero_residual_model():
    model = build_vdsr(depth=3, width=4, seed=0)
    last = conv_layers(model)[-1]
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    return model


def test_zero_residual_network_scores_exactly_bicubic(tmp_path, rng):
    folder = tmp_path / "test" / "Tiny"
    folder.mkdir(parents=True)
    for index in range(2):
        Image.fromarray(rng.integers(0, 256, (36, 30, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    Image.fromarray(rng.integers(0, 256, (30, 36), dtype=np.uint8)).save(folder / "gray.png")
    (folder / "notes.txt").write_text("not an image")
    (row,) = evaluate(_zero_residual_model(), data_dir=str(tmp_path), datasets=["Tiny"], scales=[3])
    assert row["images"] == 3
    assert row["psnr"] == row["psnr_bicubic"] and row["ssim"] == row["ssim_bicubic"]


def test_unknown_dataset_is_named(tmp_path):
    with pytest.raises(ValueError, match="'Nowhere'"):
        dataset_paths(str(tmp_path), "Nowhere")


def test_empty_dataset_is_named(tmp_path):
    (tmp_path / "test" / "Empty").mkdir(parents=True)
    with pytest.raises(ValueError, match="Empty holds no readable image"):
        dataset_paths(str(tmp_path), "Empty")


def test_an_image_too_small_to_score_is_named(tmp_path):
    path = str(tmp_path / "tiny.png")
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(path)
    assert prepare_test_images([path], 2)[0].ground_truth.shape == (16, 16)  # 16 - 2 * 2 >= 11
    with pytest.raises(ValueError, match=f"{path}: 15x15 is too small to score at x3"):
        prepare_test_images([path], 3)  # modcrop to 15, shaved to 9


def test_a_bad_file_anywhere_is_found_before_the_network_runs(tmp_path, rng):
    for dataset in ("Good", "Bad"):
        (tmp_path / "test" / dataset).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (36, 30, 3), dtype=np.uint8)).save(tmp_path / "test" / dataset / "a.png")
    (tmp_path / "test" / "Bad" / "b.png").write_bytes(open(tmp_path / "test" / "Bad" / "a.png", "rb").read()[:100])

    class Untouchable:
        def __call__(self, *args, **kwargs):
            raise AssertionError("the network ran")

    for datasets, scales, message in (
        (["Good", "Bad"], [2], "b.png: not a readable image"),
        (["Good"], [2, 12], "a.png: 24x36 is too small to score at x12"),
    ):
        with pytest.raises(ValueError, match=message):
            evaluate(Untouchable(), data_dir=str(tmp_path), datasets=datasets, scales=scales)


def test_two_images_saved_under_one_name_are_refused(tmp_path, rng):
    folder = tmp_path / "test" / "Stem"
    folder.mkdir(parents=True)
    for name in ("a.png", "a.bmp"):
        Image.fromarray(rng.integers(0, 256, (36, 30, 3), dtype=np.uint8)).save(folder / name)
    with pytest.raises(ValueError, match=r"a\.png: its saved output would be .*a\.bmp's too \(Stem/a_x\*\.png\)"):
        evaluate(
            _zero_residual_model(), data_dir=str(tmp_path), datasets=["Stem"], scales=[2], save_dir=str(tmp_path / "o")
        )
    assert not (tmp_path / "o").exists()
