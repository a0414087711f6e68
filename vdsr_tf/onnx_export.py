"""The network as an ONNX graph, built from its kernels and biases with the `onnx` helper API.

The graph: input `y`, float32 (N, 1, H, W), NCHW as ONNX's Conv takes it, the luminance in [0, 1]
of the bicubic-enlarged image (what the Keras model takes as (N, H, W, 1)); N, H and W are open.
Output `sr_y`, the same shape, not clipped or rounded. Conv (zero padding, as the paper's section 3.1)
and Relu per layer, Relu after all but the last, then Add of the input for the residual network.
Built directly rather than through tf2onnx: no TensorFlow graph tracing, no NHWC<->NCHW
transposes, and no dependency beyond `onnx`.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vdsr_tf import __version__
from vdsr_tf.atomic import atomic_path

OPSET = 17
INPUT_NAME = "y"
OUTPUT_NAME = "sr_y"


def _conv(features: str, kernel: np.ndarray, bias: np.ndarray, index: int, *, relu: bool):
    """Conv (+ Relu) nodes and their initialisers for one layer; `kernel` is Keras's (kh, kw, in, out)."""
    if kernel.ndim != 4 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0 or bias.shape != kernel.shape[-1:]:
        raise ValueError(f"layer {index}: kernel {kernel.shape} and bias {bias.shape} are not a 'same' convolution")
    kernel_name, bias_name, conv = f"kernel_{index:02d}", f"bias_{index:02d}", f"conv{index}"
    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32), kernel_name),
        numpy_helper.from_array(bias.astype(np.float32), bias_name),
    ]
    pad_h, pad_w = kernel.shape[0] // 2, kernel.shape[1] // 2
    nodes = [
        helper.make_node(
            "Conv",
            [features, kernel_name, bias_name],
            [conv],
            name=conv,
            kernel_shape=list(kernel.shape[:2]),
            pads=[pad_h, pad_w, pad_h, pad_w],
        )
    ]
    if relu:
        nodes.append(helper.make_node("Relu", [conv], [f"relu{index}"], name=f"relu{index}"))
    return nodes, initializers, nodes[-1].output[0]


def vdsr_onnx(weights, *, residual: bool, metadata: dict | None = None) -> onnx.ModelProto:
    """The ONNX model of the network whose (kernel, bias) pairs are `weights`, checked by onnx.checker.

    Args:
      weights: per layer, kernel (kh, kw, in, out) and bias (out,), as `vdsr_tf.model.read_weights` gives.
      residual: add the input to the last convolution (the paper's network).
      metadata: string key/value pairs stored as the model's metadata_props (say the weights' source).

    Raises:
      ValueError: if the layers do not chain from 1 channel back to 1 channel.
    """
    if len(weights) < 2:
        raise ValueError(f"weights: expected at least 2 layers, got {len(weights)}")
    chain = [(kernel.shape[2], kernel.shape[3]) for kernel, _ in weights]
    if chain[0][0] != 1 or chain[-1][1] != 1 or any(a[1] != b[0] for a, b in zip(chain, chain[1:])):
        raise ValueError(f"weights: layers (in, out) {chain} do not chain from 1 channel back to 1")
    nodes, initializers, features = [], [], INPUT_NAME
    for index, (kernel, bias) in enumerate(weights, start=1):
        layer_nodes, layer_initializers, features = _conv(features, kernel, bias, index, relu=index < len(weights))
        nodes += layer_nodes
        initializers += layer_initializers
    if residual:
        nodes.append(helper.make_node("Add", [INPUT_NAME, features], [OUTPUT_NAME], name="skip"))
    else:
        nodes.append(helper.make_node("Identity", [features], [OUTPUT_NAME], name="output"))
    shape = ["N", 1, "H", "W"]
    graph = helper.make_graph(
        nodes,
        f"vdsr{len(weights)}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, shape)],
        initializers,
    )
    opsets = [helper.make_opsetid("", OPSET)]
    # The oldest IR version that carries this opset, so that older runtimes load the file too.
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="vdsr_tf",
        producer_version=__version__,
        doc_string="VDSR (Kim, Lee, Lee, CVPR 2016): Y (N, 1, H, W) in [0, 1], bicubic-enlarged -> Y",
    )
    helper.set_model_props(model, {str(key): str(value) for key, value in (metadata or {}).items()})
    onnx.checker.check_model(model, full_check=True)
    return model


def write_onnx(model: onnx.ModelProto, path: str) -> None:
    """Writes `model` to `path` atomically (a crash leaves any earlier file whole)."""
    with atomic_path(path, suffix=".onnx") as temporary:
        onnx.save(model, temporary)
