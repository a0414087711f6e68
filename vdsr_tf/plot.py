"""A PNG line plot of the validation PSNR curve, drawn with Pillow (no plotting dependency)."""

from PIL import Image, ImageDraw

from vdsr_tf.atomic import atomic_path

_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40))
_SIZE = (640, 400)
_MARGIN = (60, 20, 20, 40)  # left, top, right, bottom


def plot_validation_curve(rows: list[dict], path: str, *, dataset: str) -> None:
    """Draws psnr_x* against step for `rows` like {"step": 125, "psnr_x2": 36.1, ...} on `dataset`.

    The vertical range fits the trained steps: the untrained network at step 0
    (~10 dB) would otherwise squash the curve into a flat line at the top.
    """
    keys = sorted(key for key in rows[0] if key.startswith("psnr_"))
    steps = [row["step"] for row in rows]
    trained = [row for row in rows if row["step"] > 0] or rows
    values = [row[key] for row in trained for key in keys]
    low, high = min(values) - 0.5, max(values) + 0.5
    last_step = max(max(steps), 1)
    left, top, right, bottom = _MARGIN
    width, height = _SIZE[0] - left - right, _SIZE[1] - top - bottom
    image = Image.new("RGB", _SIZE, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([left, top, left + width, top + height], outline="black")

    def point(step, value):
        value = min(max(value, low), high)
        return left + width * step / last_step, top + height * (high - value) / (high - low)

    for tick in range(int(low) + 1, int(high) + 1):
        y = point(0, tick)[1]
        draw.line([left - 4, y, left, y], fill="black")
        draw.text((left - 40, y - 6), f"{tick} dB", fill="black")
    draw.text((left, top + height + 8), "0", fill="black")
    draw.text((left + width - 40, top + height + 8), f"step {last_step}", fill="black")
    for index, key in enumerate(keys):
        colour = _COLOURS[index % len(_COLOURS)]
        points = [point(row["step"], row[key]) for row in rows]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        draw.text((left + 60 + 90 * index, top + height + 8), f"{dataset} {key[5:]}", fill=colour)
    with atomic_path(path, suffix=".png") as temporary:
        image.save(temporary, format="PNG")
