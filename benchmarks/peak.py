"""This machine's practical peak: GFLOP/s of a 2048x2048 matmul in a given dtype, measured now.

Machines here differ by about 2x in absolute speed and in whether they have
bfloat16 units at all, so benchmarks print the processor first and report
their figures as ratios to this number, in the same dtype, measured in the
same run.
"""

import platform
import statistics
import time

import tensorflow as tf
from absl import flags

from vdsr_tf.atomic import write_json
from vdsr_tf.precision import CPU_BF16_FLAGS, cpu_flags
from vdsr_tf.runtime import cpu_allocator, prefer_bfc_allocator

prefer_bfc_allocator()  # as the vdsr command does; TF_CPU_ALLOCATOR_USE_BFC=false measures without it

SIZE = 2048


def matmul_gflops(dtype=tf.float32, repeats: int = 20) -> float:
    a = tf.cast(tf.random.normal((SIZE, SIZE)), dtype)
    b = tf.cast(tf.random.normal((SIZE, SIZE)), dtype)
    multiply = tf.function(tf.linalg.matmul)
    multiply(a, b).numpy()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            result = multiply(a, b)
        result.numpy()
        best = min(best, (time.perf_counter() - started) / repeats)
    return 2 * SIZE**3 / best / 1e9


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    try:
        with open(cpuinfo) as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown processor"


def describe_machine() -> str:
    """One line: the processor, its bfloat16 flags, TensorFlow's version and its CPU allocator."""
    flags = cpu_flags()
    present = [flag for flag in (*CPU_BF16_FLAGS, "amx_tile", "avx512f", "avx2") if flag in flags]
    return (
        f"CPU: {cpu_model()}; flags: {', '.join(present) or 'none of interest'}; TensorFlow {tf.__version__}; "
        f"{cpu_allocator()} CPU allocator"
    )


def write_results(path: str | None, rows: list[dict]) -> None:
    if path:
        write_json(path, rows)


def best_seconds(call, times: int) -> float:
    """The fastest of `times` calls of `call`, which must block until its work is done."""
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


DTYPES = {"float32": tf.float32, "bfloat16": tf.bfloat16}


def define_precisions_flag(help_text: str) -> None:
    """--precisions, a comma-separated subset of DTYPES (all by default), checked when the flags are parsed."""
    flags.DEFINE_list("precisions", list(DTYPES), help_text)
    flags.register_validator(
        "precisions",
        lambda values: bool(values) and set(values) <= set(DTYPES),
        message=f"give one or more of {', '.join(DTYPES)}, separated by commas",
    )


def interleaved_rounds(timers: dict, *, flop: float, rounds: int) -> list[dict]:
    """Times `timers` ({(variant, precision): () -> seconds}) in interleaved rounds against the matmul of each dtype.

    The matmul rate drifts by several per cent within minutes, so each round
    measures the matmul of a precision just before that precision's variants,
    and each variant's ratio uses it. Returns one row per variant (median
    seconds, GFLOP/s at `flop` per call, median ratio to the matmul), after
    printing the matmul rate of every round.
    """
    seconds = {key: [] for key in timers}
    ratios = {key: [] for key in timers}
    peaks = {precision: [] for precision in DTYPES if any(key[1] == precision for key in timers)}
    for _ in range(rounds):
        for precision in peaks:
            peaks[precision].append(matmul_gflops(DTYPES[precision]))
            for key in [key for key in timers if key[1] == precision]:
                seconds[key].append(timers[key]())
                ratios[key].append(flop / seconds[key][-1] / 1e9 / peaks[precision][-1])
    rows = []
    for (name, precision), values in seconds.items():
        elapsed = statistics.median(values)
        rows.append(
            {
                "variant": name,
                "precision": precision,
                "seconds": elapsed,
                "gflops": flop / elapsed / 1e9,
                "ratio_to_matmul": statistics.median(ratios[(name, precision)]),
            }
        )
    for precision, values in peaks.items():
        print(f"matmul 2048x2048 {precision} per round: {', '.join(f'{v:.0f}' for v in values)} GFLOP/s")
    return rows
