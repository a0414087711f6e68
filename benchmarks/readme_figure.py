"""The README's before/after figure, made again from a weights file (for new shipped weights).

    python benchmarks/readme_figure.py [--weights=checkpoints/vdsr.h5] [--output=docs/images/butterfly_x3.png]

Set5 `butterfly.png` (modcrop 3) is shrunk by MATLAB bicubic to a third and enlarged x3 along the
`--input` path twice: with the network (VDSR on Y, bicubic on the colour) and without it (bicubic
alone). A 100x100 crop of each and of the original, shown at twice its size, side by side.
"""

import os

import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw, ImageFont

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALE = 3
CROP = (70, 110, 100)  # top, left, side: wing veins, where bicubic blurs most
ZOOM, GAP, LABEL_HEIGHT = 2, 6, 22

flags.DEFINE_string("weights", os.path.join(ROOT, "checkpoints", "vdsr.h5"), "Network to show.")
flags.DEFINE_string("output", os.path.join(ROOT, "docs", "images", "butterfly_x3.png"), "PNG to write.")
FLAGS = flags.FLAGS


def panels(weights: str) -> list[tuple[str, np.ndarray]]:
    from vdsr_tf.images import matlab_cast, modcrop, read_image
    from vdsr_tf.imresize import imresize
    from vdsr_tf.infer import enlarge
    from vdsr_tf.model import conv_layers, load_vdsr, make_predictor

    original = modcrop(read_image(os.path.join(ROOT, "data", "datasets", "test", "Set5", "butterfly.png")), SCALE)
    small = matlab_cast(imresize(original.astype(np.float64), scale=1 / SCALE))
    model, _ = load_vdsr(weights)
    margin = len(conv_layers(model))
    shown = [
        ("bicubic x3", enlarge(small, SCALE, lambda band: band, tile=512, margin=margin)),
        (
            f"VDSR x3 ({os.path.relpath(weights, ROOT)})",
            enlarge(small, SCALE, make_predictor(model), tile=512, margin=margin),
        ),
        ("original", original),
    ]
    top, left, side = CROP
    return [(label, pixels[top : top + side, left : left + side]) for label, pixels in shown]


def figure(shown: list[tuple[str, np.ndarray]]) -> Image.Image:
    side = shown[0][1].shape[0] * ZOOM
    canvas = Image.new("RGB", (len(shown) * side + (len(shown) - 1) * GAP, side + LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13)
    for index, (label, pixels) in enumerate(shown):
        left = index * (side + GAP)
        canvas.paste(Image.fromarray(pixels).resize((side, side), Image.NEAREST), (left, 0))
        draw.text((left + side // 2, side + LABEL_HEIGHT // 2), label, fill="black", font=font, anchor="mm")
    return canvas


def main(argv):
    del argv
    figure(panels(FLAGS.weights)).save(FLAGS.output, optimize=True)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
