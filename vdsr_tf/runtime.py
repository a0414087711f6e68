"""Process-wide settings: TensorFlow's, made before the first operation runs, and the stop signals.

TensorFlow's default CPU allocator passes each tensor to malloc, and glibc
serves blocks of 32 MiB or more (a 512x512x64 activation is 32 MiB in
bfloat16, 64 MiB in float32) with fresh pages mapped for the call and unmapped
on free: every layer of an enlargement then faults in and zeroes its output
anew (512x512 in float32: 312,000 page faults a call). TensorFlow's BFC
allocator keeps freed blocks for the next layer and the next call instead.
docs/benchmarks.md has the measured effect.
"""

import contextlib
import os
import signal
import threading

BFC_VARIABLE = "TF_CPU_ALLOCATOR_USE_BFC"


def prefer_bfc_allocator() -> None:
    """Asks TensorFlow for its BFC allocator on the CPU, unless TF_CPU_ALLOCATOR_USE_BFC says otherwise.

    TensorFlow reads the variable when it first allocates, so this works after the import
    and before the first operation.
    """
    os.environ.setdefault(BFC_VARIABLE, "true")


def cpu_allocator() -> str:
    """The CPU allocator the variable asks for: bfc or default."""
    return "bfc" if os.environ.get(BFC_VARIABLE, "").lower() in ("1", "true") else "default"


def stop_signals() -> list[int]:
    """SIGTERM, Ctrl-C and SIGHUP (a closed terminal), less those the process inherited as ignored
    (SIGINT in a shell's background job, SIGHUP under nohup) and those the system lacks (Windows)."""
    names = ("SIGTERM", "SIGINT", "SIGHUP")
    present = [getattr(signal, name) for name in names if hasattr(signal, name)]
    return [signum for signum in present if signal.getsignal(signum) is not signal.SIG_IGN]


class Interrupted(KeyboardInterrupt):
    """A stop signal raised as Ctrl-C is, so that `finally` blocks remove what was half-written
    (Python's default for SIGTERM and SIGHUP ends the process where it stands)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a process a signal ended."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


@contextlib.contextmanager
def stop_signals_handled(handler):
    """Within it, `handler` answers every stop signal; the handlers it replaced come back after.

    Only the main thread may set handlers: elsewhere it changes nothing.
    """
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, handler) for signum in stop_signals()}
    try:
        yield
    finally:
        for signum, replaced in previous.items():
            if replaced is not None:  # a handler set from C, which Python cannot put back
                signal.signal(signum, replaced)


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


def stop_signals_interrupt():
    """Within it, every stop signal raises `Interrupted`; training sets its own handler inside."""
    return stop_signals_handled(_raise_interrupted)
