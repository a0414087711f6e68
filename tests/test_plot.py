import numpy as np
from PIL import Image

from vdsr_tf.plot import plot_validation_curve

X2_COLOUR = (31, 119, 180)


def test_untrained_step_zero_does_not_squash_the_curve(tmp_path):
    rows = [{"step": 0, "psnr_x2": 10.0, "psnr_x3": 10.0}]
    rows += [{"step": 100 * i, "psnr_x2": 33.0 + i % 3, "psnr_x3": 31.0} for i in range(1, 11)]
    path = str(tmp_path / "curve.png")
    plot_validation_curve(rows, path, dataset="Set5")
    pixels = np.asarray(Image.open(path).convert("RGB"))
    right_half = pixels[:, pixels.shape[1] // 2 :]
    rows_with_x2 = np.nonzero(np.all(right_half == X2_COLOUR, axis=2).any(axis=1))[0]
    # 33 to 35 dB of x2 must span a good part of the 340-pixel plot, not a few pixels at its top.
    assert rows_with_x2.max() - rows_with_x2.min() > 100


def test_the_legend_names_the_validation_dataset(tmp_path):
    rows = [{"step": 100, "psnr_x2": 33.0}, {"step": 200, "psnr_x2": 34.0}]
    drawn = []
    for dataset in ("Set5", "Set14"):
        path = str(tmp_path / f"{dataset}.png")
        plot_validation_curve(rows, path, dataset=dataset)
        drawn.append(np.asarray(Image.open(path).convert("RGB")))
    assert not np.array_equal(drawn[0], drawn[1])
