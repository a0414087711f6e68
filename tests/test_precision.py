import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import OFFICIAL_WEIGHTS, SHARED_DATASETS, requires_shared, run_main

from vdsr_tf.evaluate import prepare_test_images, score
from vdsr_tf.model import build_vdsr, conv_layers, make_predictor, set_conv_weights
from vdsr_tf.precision import cpu_flags, native_bf16, resolve_precision

requires_bf16_units = pytest.mark.skipif(
    native_bf16() is None, reason="this CPU has no bfloat16 units (amx_bf16 / avx512_bf16); emulated bf16 is slow"
)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n")
    assert cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "avx512f", "avx512_bf16"}
    assert cpu_flags(str(tmp_path / "missing")) == set()


@pytest.mark.parametrize(
    "flags,expected",
    [({"avx2", "fma"}, None), ({"avx512f", "avx512_bf16"}, "avx512_bf16"), ({"amx_tile", "amx_bf16"}, "amx_bf16")],
)
def test_native_bf16_is_detected_from_the_reported_flags(flags, expected):
    reason = native_bf16(flags=flags, gpu=None)
    assert (reason is None) if expected is None else (expected in reason)
    assert "A100" in native_bf16(flags={"avx2"}, gpu="NVIDIA A100")


def test_auto_picks_bfloat16_only_where_there_are_units():
    assert resolve_precision("auto", reason="the CPU reports amx_bf16")[0] == "bfloat16"
    precision, why = resolve_precision("auto", reason=None)
    assert precision == "float32" and "no bfloat16 units" in why
    assert resolve_precision("float32", reason="the CPU reports amx_bf16")[0] == "float32"
    precision, why = resolve_precision("bfloat16", reason=None)
    assert precision == "bfloat16" and "emulated" in why
    with pytest.raises(ValueError, match="--precision must be one of auto, float32, bfloat16"):
        resolve_precision("fp16", reason=None)


def test_mixed_model_keeps_the_first_two_the_last_and_add_in_float32():
    model = build_vdsr(depth=6, width=8, precision="bfloat16")
    layers = conv_layers(model)
    assert [layer.compute_dtype for layer in layers] == ["float32"] * 2 + ["bfloat16"] * 3 + ["float32"]
    assert model.get_layer("skip").compute_dtype == "float32"
    assert all(variable.dtype == "float32" for variable in model.weights)  # the weights file does not change
    output = model(np.random.default_rng(0).random((1, 16, 16, 1)).astype(np.float32))
    assert output.dtype == tf.float32


def test_training_keeps_only_the_first_layer_in_float32(tiny_training, tmp_path):
    from vdsr_tf.data import TrainingPatches
    from vdsr_tf.train import build_trainer

    config = dataclasses.replace(tiny_training, depth=4, precision="bfloat16")
    patches = TrainingPatches(config.train_h5)
    try:
        trainer, _, _ = build_trainer(config, tf.distribute.get_strategy(), patches, str(tmp_path / "run"))
    finally:
        patches.close()
    dtypes = [layer.compute_dtype for layer in conv_layers(trainer.model)]
    assert dtypes == ["float32", "bfloat16", "bfloat16", "float32"]
    assert trainer.model.get_layer("skip").compute_dtype == "float32"
    with pytest.raises(ValueError, match="float32_leading_layers"):
        build_vdsr(depth=3, width=4, precision="bfloat16", float32_leading_layers=0)


def test_unknown_precision_flag_is_a_one_line_error():
    result = run_main("--precision=fp16", "--input=x.png")
    assert result.returncode != 0
    assert "--precision" in result.stderr and "auto" in result.stderr and "Traceback" not in result.stderr


@requires_shared
@requires_bf16_units
def test_bfloat16_official_weights_stay_within_0_05_db_of_float32():
    from vdsr_tf.official_weights import read_matconvnet

    weights = read_matconvnet(OFFICIAL_WEIGHTS)
    image = prepare_test_images([os.path.join(SHARED_DATASETS, "test", "Set5", "butterfly.png")], 4)[0]
    psnr = {}
    for precision in ("float32", "bfloat16"):
        model = build_vdsr(precision=precision)
        set_conv_weights(model, weights, source=OFFICIAL_WEIGHTS)
        psnr[precision] = score(image, make_predictor(model)(image.interpolated), 4)[0]
    assert abs(psnr["bfloat16"] - psnr["float32"]) < 0.05
    assert psnr["bfloat16"] != psnr["float32"]  # it really ran in another precision


def test_a_bfloat16_training_step_trains_and_resumes_in_float32(tiny_training):
    from vdsr_tf.train import train

    bf16 = dataclasses.replace(tiny_training, precision="bfloat16", max_steps=3)
    record = train(bf16)
    assert record["steps"] == 3 and record["config"]["precision"] == "bfloat16"
    ratios = [row["loss_over_bicubic"] for row in record["training_loss"]]
    assert ratios and np.isfinite(ratios).all()
    # The state holds float32 weights whatever the precision, so the other precision resumes it.
    record = train(dataclasses.replace(bf16, precision="float32"))
    assert record["steps"] == 6 and record["config"]["precision"] == "float32"
    assert [row["step"] for row in record["validation"]] == [0, 3, 6]
