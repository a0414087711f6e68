"""Which precision the network computes in: float32, or bfloat16 where the hardware has it.

The mixed model (`vdsr_tf.model.build_vdsr`) computes the middle convolutions
in bfloat16 and keeps the first two (the first's input is the image; training
keeps the first alone), the last and the skip-add in float32; weights stay
float32 either way. bfloat16 pays only where
the processor multiplies it natively: Intel AMX (`amx_bf16`), AVX-512 BF16
(`avx512_bf16`, Intel and AMD), or a GPU of compute capability 8.0 or newer.
Elsewhere TensorFlow emulates it, correctly but slower than float32.
"""

import tensorflow as tf

from vdsr_tf.config import PRECISIONS, require_choice

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The feature flags the kernel reports for the first processor (empty where it does not say)."""
    try:
        with open(cpuinfo) as file:
            for line in file:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpu_bf16() -> str | None:
    """The name of the first GPU with native bfloat16 (compute capability 8.0 or newer), if any."""
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        if details.get("compute_capability", (0, 0)) >= (8, 0):
            return details.get("device_name", gpu.name)
    return None


def native_bf16(flags: set[str] | None = None, gpu: str | None = None) -> str | None:
    """Why this machine multiplies bfloat16 natively (a line for the log), or None."""
    if gpu:
        return f"the GPU {gpu} has bfloat16 units"
    present = [flag for flag in CPU_BF16_FLAGS if flag in (cpu_flags() if flags is None else flags)]
    if present:
        return f"the CPU reports {' and '.join(present)}"
    return None


def resolve_precision(requested: str, *, reason: str | None) -> tuple[str, str]:
    """(float32 or bfloat16, a sentence saying why) for a requested precision and `native_bf16`'s reason.

    Raises:
      ValueError: naming --precision, for a value outside PRECISIONS.
    """
    require_choice("precision", requested, PRECISIONS)
    if requested == "float32":
        return "float32", "float32 as asked"
    if requested == "bfloat16":
        if reason:
            return "bfloat16", f"bfloat16 as asked ({reason})"
        return "bfloat16", "bfloat16 as asked, emulated: this machine has no bfloat16 units, so it runs slower"
    if reason:
        return "bfloat16", f"bfloat16, chosen by --precision=auto: {reason}"
    return "float32", "float32, chosen by --precision=auto: no bfloat16 units found (no amx_bf16, avx512_bf16 or GPU)"
