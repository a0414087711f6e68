"""The same VDSR network, with the same weights, in OpenVINO, ONNX Runtime, PyTorch and this project.

    pip install -r benchmarks/requirements-peers.txt
    python benchmarks/peers.py [--size=512] [--rounds=3] [--repeats=3] [--steps=3]
        [--threads=2] [--weights=checkpoints/vdsr.h5] [--results_json=FILE]

Inference on one --size x --size image (best of --repeats runs):
  TensorFlow   the project's rows: float32 and the bfloat16 mixed model of
               `vdsr_tf.model.build_vdsr`, a tf.function traced once for any shape;
  OpenVINO     the ONNX graph of `vdsr_tf.onnx_export.vdsr_onnx` compiled for CPU in its
               default precision (bfloat16 on CPUs with bfloat16 units) and with
               INFERENCE_PRECISION_HINT=f32; the precision column is what it used;
  ONNX Runtime the same graph, float32, CPUExecutionProvider;
  PyTorch      the same layers as nn.Conv2d, float32 and bfloat16 autocast (every
               convolution bfloat16, unlike the project's mixed model), each in NCHW
               and in channels_last.
A training step of 64 41x41 patches (best of --steps): the project's
`vdsr_tf.step.make_train_step` in both precisions (conv1 alone float32, as training
builds it), and PyTorch's equivalent
(loss 1/2 sum of squares / 64, weight decay 1e-4 on kernels, every gradient
element clipped to theta/lr = 1e-3/0.1, SGD momentum 0.9) in the same four forms.

OpenVINO, ONNX Runtime and PyTorch get --threads threads; TensorFlow keeps its
defaults (every core; 2 on the project's machines). Engines not installed are
skipped. All variants run in interleaved rounds, each opened by a 2048x2048
matmul per dtype (`peak.matmul_gflops`) for the TensorFlow rows' ratio; every
figure is the median round. "vs project float32" is the row's speed over the
project's float32 row of the same task.

Checks: each inference output against the Keras float32 output of the same
input; each training step's first loss (relative) and, in float32, its updated
weights against the project's float32 step. The script exits 1 after the
tables if a difference exceeds its tolerance (TOLERANCE, WEIGHTS_TOLERANCE).
"""

import dataclasses
import functools
import importlib
import statistics
import sys
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags
from peak import DTYPES, best_seconds, describe_machine, matmul_gflops, write_results

from vdsr_tf.model import (
    FLOAT32_LEADING_LAYERS,
    TRAINING_FLOAT32_LEADING_LAYERS,
    build_vdsr,
    conv_layers,
    read_weights,
    set_conv_weights,
)
from vdsr_tf.step import make_train_step

flags.DEFINE_integer("size", 512, "Side of the square test image.", lower_bound=1)
flags.DEFINE_integer("rounds", 3, "Interleaved rounds of every variant (the median is reported).", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Timed inference runs per variant and round (the best is kept).", lower_bound=1)
flags.DEFINE_integer("steps", 3, "Timed training steps per variant and round (the best is kept).", lower_bound=1)
flags.DEFINE_integer("threads", 2, "Threads of OpenVINO, ONNX Runtime and PyTorch.", lower_bound=1)
flags.DEFINE_string("weights", None, "A vdsr_tf weights file; default a seeded build_vdsr(seed=0).")
flags.DEFINE_string("results_json", None, "Also write the rows to this JSON file.")
FLAGS = flags.FLAGS

INFERENCE, TRAINING = "inference", "train step"
BATCH, PATCH = 64, 41
LEARNING_RATE, THETA, WEIGHT_DECAY, MOMENTUM = 0.1, 1e-3, 1e-4, 0.9
# bfloat16 keeps 8 significant bits. The seeded network's residual has a standard deviation of
# 0.19 on a uniform random image; the mixed model's output is off by 0.009 RMS and 0.037 at most
# (128x128), and all-bfloat16 autocast by more. A wrong weight layout is off by more than 0.5.
TOLERANCE = {"float32": 1e-4, "bfloat16": 1e-1, "float16": 1e-1}
# One step moves a weight by at most THETA = 1e-3 (the clip), the decay's share by lr * 1e-4 * |kernel|,
# some 6e-7: float32 steps must agree far below that (measured 7.5e-9). bfloat16 steps are not held
# to it: where a gradient element is a sum that cancels, its bfloat16 sign can flip, a 2 * THETA difference.
WEIGHTS_TOLERANCE = 1e-7
PROJECT_FLOAT32 = {INFERENCE: "TensorFlow float32", TRAINING: "the project's step, float32"}


@dataclasses.dataclass
class Variant:
    """One row: `call` runs once (inference: returns the output; training: one step, returns the loss)."""

    name: str
    engine: str
    precision: str
    task: str
    call: Callable
    matmul: str | None = None
    weights: Callable | None = None


def optional_module(name: str, engine: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        print(f"{engine} is not installed (no module {name}): its rows are skipped")
        return None


def network_weights(path: str | None) -> tuple[list, bool]:
    """[(kernel (kh, kw, in, out), bias)] and whether the network is residual."""
    if path is None:
        return [tuple(layer.get_weights()) for layer in conv_layers(build_vdsr(seed=0))], True
    weights, attributes = read_weights(path)
    return weights, bool(attributes["residual"])


def keras_model(weights: list, residual: bool, precision: str, float32_leading_layers: int) -> keras.Model:
    depth, width = len(weights), weights[0][0].shape[-1]
    model = build_vdsr(
        depth=depth, width=width, residual=residual, precision=precision, float32_leading_layers=float32_leading_layers
    )
    set_conv_weights(model, weights, source=FLAGS.weights or "build_vdsr(seed=0)")
    return model


def tensorflow_inference(weights: list, residual: bool, image: np.ndarray) -> list[Variant]:
    variants = []
    tensor = tf.constant(image[None, :, :, None])
    for precision in DTYPES:
        model = keras_model(weights, residual, precision, FLOAT32_LEADING_LAYERS)
        any_shape = tf.function(
            lambda x, model=model: model(x, training=False),
            input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)],
        )
        label = "float32" if precision == "float32" else "bfloat16 (mixed)"
        call = functools.partial(lambda function: function(tensor).numpy(), any_shape)
        variants.append(Variant(f"TensorFlow {label}", "TensorFlow", precision, INFERENCE, call, precision))
    return variants


def tensorflow_training(weights: list, residual: bool, inputs: np.ndarray, labels: np.ndarray) -> list[Variant]:
    variants = []
    batch = (tf.constant(inputs), tf.constant(labels), tf.constant(LEARNING_RATE))
    for precision in DTYPES:
        model = keras_model(weights, residual, precision, TRAINING_FLOAT32_LEADING_LAYERS)
        optimizer = keras.optimizers.SGD(learning_rate=LEARNING_RATE, momentum=MOMENTUM)
        optimizer.build(model.trainable_variables)
        step = make_train_step(
            model,
            optimizer,
            tf.distribute.get_strategy(),
            batch_size=BATCH,
            weight_decay=WEIGHT_DECAY,
            grad_clip=THETA,
        )
        call = functools.partial(lambda step: float(step(*batch)[0]), step)
        current = functools.partial(lambda model: [tuple(layer.get_weights()) for layer in conv_layers(model)], model)
        name = f"the project's step, {precision}"
        variants.append(Variant(name, "TensorFlow", precision, TRAINING, call, precision, current))
    return variants


def onnxruntime_inference(model_bytes: bytes, image: np.ndarray) -> list[Variant]:
    ort = optional_module("onnxruntime", "ONNX Runtime")
    if ort is None:
        return []
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = FLAGS.threads, 1
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: image[None, None]}
    engine = f"ONNX Runtime {ort.__version__}"
    return [Variant("ONNX Runtime float32", engine, "float32", INFERENCE, lambda: session.run(None, feed)[0])]


def openvino_inference(model_bytes: bytes, image: np.ndarray) -> list[Variant]:
    ov = optional_module("openvino", "OpenVINO")
    if ov is None:
        return []
    core = ov.Core()
    model = core.read_model(model_bytes)
    names = {"bf16": "bfloat16", "f32": "float32", "f16": "float16"}
    variants = []
    for label, hint in (("default precision", {}), ("hint f32", {"INFERENCE_PRECISION_HINT": "f32"})):
        compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": FLAGS.threads, **hint})
        used = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        request = compiled.create_infer_request()
        call = functools.partial(lambda request: request.infer({0: image[None, None]})[0], request)
        engine = f"OpenVINO {ov.__version__.split('-')[0]}"
        variants.append(Variant(f"OpenVINO {label}", engine, names.get(used, used), INFERENCE, call))
    return variants


def torch_network(torch, weights: list, residual: bool):
    """nn.Conv2d layers holding `weights` (Keras (kh, kw, in, out) -> torch (out, in, kh, kw)), float32."""
    layers = []
    for index, (kernel, bias) in enumerate(weights):
        conv = torch.nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel.shape[:2], padding="same")
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
            conv.bias.copy_(torch.from_numpy(bias))
        layers += [conv, torch.nn.ReLU()] if index < len(weights) - 1 else [conv]

    class VDSR(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(*layers)

        def forward(self, x):
            return x + self.body(x) if residual else self.body(x)

    return VDSR()


def torch_forms(torch):
    """(name suffix, precision, memory format, autocast on) of the four PyTorch forms."""
    return [
        (f"{label}, {layout}", precision, memory_format, precision == "bfloat16")
        for label, precision in (("float32", "float32"), ("bfloat16 autocast", "bfloat16"))
        for layout, memory_format in (("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last))
    ]


def torch_inference(torch, weights: list, residual: bool, image: np.ndarray) -> list[Variant]:
    variants = []
    for suffix, precision, memory_format, bf16 in torch_forms(torch):
        net = torch_network(torch, weights, residual).eval().to(memory_format=memory_format)
        x = torch.from_numpy(image[None, None]).contiguous(memory_format=memory_format)

        def call(net=net, x=x, bf16=bf16):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return net(x).float().numpy()

        variants.append(Variant(f"PyTorch {suffix}", f"PyTorch {torch.__version__}", precision, INFERENCE, call))
    return variants


def torch_step(torch, net, bf16: bool):
    """The project's step in PyTorch: (inputs, labels) -> data loss, after one update."""
    kernels = [module.weight for module in net.modules() if isinstance(module, torch.nn.Conv2d)]
    parameters = list(net.parameters())
    # torch's momentum buffer b = m b + g, w -= lr b equals Keras's v = m v - lr g, w += v at a fixed lr.
    optimizer = torch.optim.SGD(parameters, lr=LEARNING_RATE, momentum=MOMENTUM)
    bound = THETA / LEARNING_RATE

    def step(inputs, labels):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            outputs = net(inputs)
        data_loss = 0.5 * torch.sum(torch.square(outputs.float() - labels)) / BATCH
        decay = 0.5 * WEIGHT_DECAY * sum(torch.sum(torch.square(kernel)) for kernel in kernels)
        (data_loss + decay).backward()
        for parameter in parameters:
            parameter.grad.clamp_(-bound, bound)
        optimizer.step()
        return data_loss.item()

    return step


def torch_weights(torch, net) -> list:
    """[(kernel, bias)] of `net` in Keras's layout (kh, kw, in, out)."""
    convs = [module for module in net.modules() if isinstance(module, torch.nn.Conv2d)]
    return [(conv.weight.detach().permute(2, 3, 1, 0).numpy(), conv.bias.detach().numpy()) for conv in convs]


def torch_training(torch, weights: list, residual: bool, inputs: np.ndarray, labels: np.ndarray) -> list[Variant]:
    variants, batch = [], (inputs, labels)
    for suffix, precision, memory_format, bf16 in torch_forms(torch):
        net = torch_network(torch, weights, residual).train().to(memory_format=memory_format)
        x, y = (torch.from_numpy(a.transpose(0, 3, 1, 2)).contiguous(memory_format=memory_format) for a in batch)
        step = torch_step(torch, net, bf16)
        name, engine = f"PyTorch step, {suffix}", f"PyTorch {torch.__version__}"
        current = functools.partial(torch_weights, torch, net)
        variants.append(Variant(name, engine, precision, TRAINING, functools.partial(step, x, y), None, current))
    return variants


def first_differences(variants: list[Variant]) -> dict[str, dict]:
    """Runs each variant once (the warm-up) and compares it with the float32 reference of its task.

    Inference: max |output - Keras float32 output|, within TOLERANCE. Training: the
    first step's loss, relative, within TOLERANCE, and max |weights after it - the
    project's float32 step's|, within WEIGHTS_TOLERANCE in float32. Returns per
    variant "difference" (text), "max_difference", "agrees" and, for training,
    "loss_relative_difference".
    """
    results = {variant.name: variant.call() for variant in variants}
    after = {variant.name: variant.weights() for variant in variants if variant.weights}
    checks = {}
    for variant in variants:
        reference, tolerance = PROJECT_FLOAT32[variant.task], TOLERANCE[variant.precision]
        if variant.name == reference:
            checks[variant.name] = {"difference": "reference", "max_difference": 0.0, "agrees": True}
        elif variant.task == INFERENCE:
            output, expected = (np.reshape(results[name], -1) for name in (variant.name, reference))
            difference = float(np.max(np.abs(output - expected)))
            checks[variant.name] = {"difference": f"{difference:.1e}", "max_difference": difference}
            checks[variant.name]["agrees"] = difference <= tolerance
        else:
            loss = abs(results[variant.name] - results[reference]) / abs(results[reference])
            pairs = zip(after[variant.name], after[reference])
            difference = max(float(np.max(np.abs(a - b))) for ours, theirs in pairs for a, b in zip(ours, theirs))
            weights_ok = variant.precision != "float32" or difference <= WEIGHTS_TOLERANCE
            checks[variant.name] = {
                "difference": f"loss {loss:.1e}, weights {difference:.1e}",
                "max_difference": difference,
                "loss_relative_difference": loss,
                "agrees": loss <= tolerance and weights_ok,
            }
    return checks


def measure(variants: list[Variant]) -> tuple[dict, dict]:
    """Seconds of every variant and GFLOP/s of the matmul of each dtype, per round."""
    seconds = {variant.name: [] for variant in variants}
    peaks = {precision: [] for precision in DTYPES}
    for _ in range(FLAGS.rounds):
        for precision, dtype in DTYPES.items():
            peaks[precision].append(matmul_gflops(dtype))
        for variant in variants:
            times = FLAGS.repeats if variant.task == INFERENCE else FLAGS.steps
            seconds[variant.name].append(best_seconds(variant.call, times))
    return seconds, peaks


def make_row(variant: Variant, seconds: dict, peaks: dict, flop: dict, check: dict) -> dict:
    """The JSON row of one variant: medians over rounds of its time and its two ratios."""
    own = seconds[variant.name]
    project = seconds[PROJECT_FLOAT32[variant.task]]
    gflops = [flop[variant.task] / elapsed / 1e9 for elapsed in own]
    row = {"variant": variant.name, "engine": variant.engine, "precision": variant.precision, "task": variant.task}
    row["seconds"] = statistics.median(own)
    if variant.task == INFERENCE:
        row["mpix_per_s"] = FLAGS.size**2 / row["seconds"] / 1e6
    else:
        row["seconds_per_step"] = row["seconds"]
    row["gflops"] = statistics.median(gflops)
    row["ratio_to_matmul"] = (
        statistics.median(g / peak for g, peak in zip(gflops, peaks[variant.matmul])) if variant.matmul else None
    )
    row["ratio_to_project_float32"] = statistics.median(theirs / ours for ours, theirs in zip(own, project))
    return row | check


def print_table(rows: list[dict], task: str) -> None:
    if task == INFERENCE:
        print(f"\nInference, {FLAGS.size}x{FLAGS.size}, best of {FLAGS.repeats}, median of {FLAGS.rounds} rounds:")
        columns = ["seconds", "MPix/s", "GFLOP/s", "ratio to matmul", "vs project float32", "max diff from Keras"]
    else:
        print(f"\nTraining step, {BATCH} patches {PATCH}x{PATCH}, best of {FLAGS.steps}, median of {FLAGS.rounds}:")
        columns = ["seconds per step", "GFLOP/s", "ratio to matmul", "vs project float32", "diff from project float32"]
    columns = ["variant", "engine", "precision", *columns]
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for row in (row for row in rows if row["task"] == task):
        cells = [row["variant"], row["engine"], row["precision"], f"{row['seconds']:.3f}"]
        if task == INFERENCE:
            cells.append(f"{row['mpix_per_s']:.3f}")
        ratio = "-" if row["ratio_to_matmul"] is None else f"{row['ratio_to_matmul']:.2f}"
        agrees = "" if row["agrees"] else " (over the tolerance)"
        cells += [f"{row['gflops']:.0f}", ratio, f"{row['ratio_to_project_float32']:.2f}", row["difference"] + agrees]
        print("| " + " | ".join(cells) + " |")


def all_variants(weights: list, residual: bool, image: np.ndarray, inputs: np.ndarray, labels: np.ndarray) -> list:
    """TensorFlow's rows first, so that they run right after each round's matmuls."""
    variants = tensorflow_inference(weights, residual, image) + tensorflow_training(weights, residual, inputs, labels)
    if optional_module("onnx", "ONNX (for OpenVINO and ONNX Runtime)") is not None:
        from vdsr_tf.onnx_export import vdsr_onnx

        model_bytes = vdsr_onnx(weights, residual=residual).SerializeToString()
        variants += openvino_inference(model_bytes, image) + onnxruntime_inference(model_bytes, image)
    torch = optional_module("torch", "PyTorch")
    if torch is not None:
        torch.set_num_threads(FLAGS.threads)
        variants += torch_inference(torch, weights, residual, image)
        variants += torch_training(torch, weights, residual, inputs, labels)
    return variants


def main(argv):
    del argv
    print(describe_machine())
    weights, residual = network_weights(FLAGS.weights)
    generator = np.random.default_rng(0)
    image = generator.random((FLAGS.size, FLAGS.size), dtype=np.float32)
    inputs, labels = (generator.random((BATCH, PATCH, PATCH, 1), dtype=np.float32) for _ in range(2))
    variants = all_variants(weights, residual, image, inputs, labels)
    differences = first_differences(variants)
    seconds, peaks = measure(variants)
    flop_per_pixel = 2 * sum(kernel.size for kernel, _ in weights)
    flop = {INFERENCE: flop_per_pixel * FLAGS.size**2, TRAINING: 3 * flop_per_pixel * PATCH**2 * BATCH}
    for precision, values in peaks.items():
        print(f"matmul 2048x2048 {precision} per round: {', '.join(f'{v:.0f}' for v in values)} GFLOP/s")
    rows = [make_row(variant, seconds, peaks, flop, differences[variant.name]) for variant in variants]
    for task in (INFERENCE, TRAINING):
        print_table(rows, task)
    write_results(FLAGS.results_json, rows)
    if not all(row["agrees"] for row in rows):
        sys.exit("some rows differ from the float32 reference by more than TOLERANCE")


if __name__ == "__main__":
    app.run(main)
