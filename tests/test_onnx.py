"""vdsr_tf/onnx_export.py and --export_onnx: the ONNX graph computes what the Keras model computes."""

import os

import numpy as np
import onnx
import onnxruntime
import pytest
from helpers import ROOT, last_line, run_main

from vdsr_tf.model import build_vdsr, conv_layers, load_vdsr
from vdsr_tf.onnx_export import INPUT_NAME, OPSET, OUTPUT_NAME, vdsr_onnx

SHIPPED_WEIGHTS = os.path.join(ROOT, "checkpoints", "vdsr.h5")


def run_onnx(model: onnx.ModelProto, images: np.ndarray) -> np.ndarray:
    """Runs the graph on (N, H, W, 1) images, the Keras layout, through its (N, 1, H, W) input."""
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: images.transpose(0, 3, 1, 2)})[0].transpose(0, 2, 3, 1)


def keras_weights(model):
    return [layer.get_weights() for layer in conv_layers(model)]


@pytest.mark.parametrize("height, width", [(37, 45), (16, 61)])
def test_shipped_network_matches_keras(height, width):
    model, attributes = load_vdsr(SHIPPED_WEIGHTS)
    images = np.random.default_rng(height).random((2, height, width, 1), dtype=np.float32)
    exported = vdsr_onnx(keras_weights(model), residual=bool(attributes["residual"]))
    difference = np.abs(run_onnx(exported, images) - model(images, training=False).numpy()).max()
    # float32 both ways; measured 7e-7 to 9e-7 on 20 layers, summation order being the only difference.
    assert difference < 1e-4


def test_non_residual_network_matches_keras():
    model = build_vdsr(depth=4, width=6, residual=False, seed=3)
    images = np.random.default_rng(1).random((1, 23, 19, 1), dtype=np.float32)
    difference = np.abs(run_onnx(vdsr_onnx(keras_weights(model), residual=False), images) - model(images).numpy())
    assert difference.max() < 1e-5
    # The residual graph adds the input back: it must differ by exactly the input.
    residual = run_onnx(vdsr_onnx(keras_weights(model), residual=True), images)
    np.testing.assert_allclose(residual - images, model(images).numpy(), atol=1e-5)


def test_graph_has_open_height_and_width_and_a_recent_opset():
    exported = vdsr_onnx(keras_weights(build_vdsr(depth=3, width=4, seed=0)), residual=True, metadata={"step": 7})
    for value in (exported.graph.input[0], exported.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == ["N", 1, "H", "W"]
    assert exported.opset_import[0].version == OPSET >= 17
    assert [node.op_type for node in exported.graph.node] == ["Conv", "Relu", "Conv", "Relu", "Conv", "Add"]
    assert {prop.key: prop.value for prop in exported.metadata_props} == {"step": "7"}


@pytest.mark.parametrize(
    "shapes, message",
    [
        ([(3, 3, 1, 4)], "at least 2 layers"),
        ([(3, 3, 1, 4), (3, 3, 5, 1)], "do not chain"),
        ([(3, 3, 3, 4), (3, 3, 4, 1)], "do not chain"),
        ([(2, 2, 1, 4), (3, 3, 4, 1)], "layer 1"),
    ],
)
def test_weights_that_are_not_a_vdsr_are_refused(shapes, message):
    weights = [(np.zeros(shape, np.float32), np.zeros(shape[-1], np.float32)) for shape in shapes]
    with pytest.raises(ValueError, match=message):
        vdsr_onnx(weights, residual=True)


def test_export_onnx_writes_the_checkpoint_and_never_replaces_unasked(checkpoint_dir, tmp_path):
    path = tmp_path / "out" / "vdsr.onnx"
    result = run_main(f"--export_onnx={path}", f"--checkpoint_dir={checkpoint_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    model, _ = load_vdsr(str(checkpoint_dir / "vdsr.h5"))
    images = np.random.default_rng(2).random((1, 20, 30, 1), dtype=np.float32)
    assert np.abs(run_onnx(onnx.load(str(path)), images) - model(images).numpy()).max() < 1e-5
    assert os.listdir(tmp_path / "out") == ["vdsr.onnx"]  # no temporary file left beside it
    before = path.read_bytes()
    again = run_main(f"--export_onnx={path}", f"--checkpoint_dir={checkpoint_dir}")
    assert again.returncode != 0
    assert last_line(again) == f"error: --export_onnx: {path} exists (use --overwrite to replace it)"
    assert path.read_bytes() == before
    replaced = run_main(f"--export_onnx={path}", f"--checkpoint_dir={checkpoint_dir}", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr[-2000:]


@pytest.mark.parametrize(
    "where, message", [("folder", "is a folder"), ("under_a_file", "a_file is a file, not a folder")]
)
def test_export_onnx_to_an_impossible_path_is_one_line(checkpoint_dir, tmp_path, where, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("")
    path = tmp_path / "folder" if where == "folder" else tmp_path / "a_file" / "vdsr.onnx"
    result = run_main(f"--export_onnx={path}", f"--checkpoint_dir={checkpoint_dir}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert last_line(result).startswith("error: --export_onnx: ") and message in last_line(result)
