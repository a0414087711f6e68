"""Peak memory and time of enlarging one large picture (the --input path, without the file I/O).

    python benchmarks/enlarge_memory.py [--height=2000] [--width=3000] [--scale=2] [--tile=512]

The enlargement runs in a fresh subprocess so that its peak resident set
(`resource.getrusage`, ru_maxrss) is its own. Reported: the peak once
TensorFlow, the network and the test picture are ready (the floor), the peak
over the whole run, and the seconds `enlarge` took. The precision is
resolved as `--input` resolves it (auto: bfloat16 where the CPU has it), and
the CPU allocator is the command's (TF_CPU_ALLOCATOR_USE_BFC=false: without BFC).
"""

import json
import os
import resource
import subprocess
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_integer("height", 2000, "Input height.", lower_bound=1)
flags.DEFINE_integer("width", 3000, "Input width.", lower_bound=1)
flags.DEFINE_float("scale", 2.0, "Enlargement factor.")
flags.DEFINE_integer("tile", 512, "Tile side, as main.py's --tile.", lower_bound=16)
flags.DEFINE_string("weights", os.path.join(ROOT, "checkpoints", "vdsr.h5"), "Network to run.")
flags.DEFINE_enum("precision", "auto", ["auto", "float32", "bfloat16"], "As main.py's --precision.")
flags.DEFINE_bool("child", False, "Internal: run the enlargement in this process and print JSON.")
FLAGS = flags.FLAGS


def peak_rss_mib(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def picture(height: int, width: int):
    """A smooth RGB uint8 picture: random noise integrated along both axes."""
    import numpy as np

    noise = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    smooth = np.cumsum(np.cumsum(noise, axis=0), axis=1)
    smooth *= 255 / smooth.max()
    return smooth.astype(np.uint8)


def run_child() -> dict:
    from vdsr_tf.runtime import cpu_allocator, prefer_bfc_allocator

    prefer_bfc_allocator()
    from vdsr_tf.infer import enlarge
    from vdsr_tf.model import conv_layers, load_vdsr, make_predictor
    from vdsr_tf.precision import gpu_bf16, native_bf16, resolve_precision

    precision, _ = resolve_precision(FLAGS.precision, reason=native_bf16(gpu=gpu_bf16()))
    model, _ = load_vdsr(FLAGS.weights, precision=precision)
    pixels = picture(FLAGS.height, FLAGS.width)
    loaded = peak_rss_mib()
    started = time.perf_counter()
    out = enlarge(pixels, FLAGS.scale, make_predictor(model), tile=FLAGS.tile, margin=len(conv_layers(model)))
    seconds = time.perf_counter() - started
    return {
        "precision": precision,
        "allocator": cpu_allocator(),
        "output": list(out.shape),
        "peak_rss_loaded_mib": round(loaded),
        "peak_rss_mib": round(peak_rss_mib()),
        "seconds": round(seconds, 1),
    }


def main(argv):
    del argv
    if FLAGS.child:
        print(json.dumps(run_child()))
        return
    command = [sys.executable, os.path.abspath(__file__), "--child", *sys.argv[1:]]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if result.returncode != 0:
        sys.exit(f"error: the enlargement failed:\n{result.stderr[-2000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["peak_rss_children_mib"] = round(peak_rss_mib(resource.RUSAGE_CHILDREN))
    print(f"{FLAGS.height}x{FLAGS.width} x{FLAGS.scale:g}, tile {FLAGS.tile}: {json.dumps(report)}")


if __name__ == "__main__":
    app.run(main)
