import os
import signal
import subprocess
import sys

import pytest

from vdsr_tf.runtime import (
    BFC_VARIABLE,
    Interrupted,
    cpu_allocator,
    exit_status,
    prefer_bfc_allocator,
    stop_signals,
    stop_signals_interrupt,
)

# Three 512x512x64 float32 convolutions (64 MiB outputs) after TensorFlow is imported; prints the
# page faults of the second call.
FAULTS_OF_A_CALL = """
import resource
import numpy as np
import tensorflow as tf
from vdsr_tf.runtime import prefer_bfc_allocator
prefer_bfc_allocator()
conv = tf.keras.layers.Conv2D(64, 3, padding="same")
layers = tf.function(lambda x: conv(conv(conv(x))))
x = tf.constant(np.ones((1, 512, 512, 64), np.float32))
layers(x).numpy()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
layers(x).numpy()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults_of_a_call(setting: str | None) -> int:
    environment = {key: value for key, value in os.environ.items() if key != BFC_VARIABLE}
    if setting is not None:
        environment[BFC_VARIABLE] = setting
    environment["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, "-c", FAULTS_OF_A_CALL], capture_output=True, text=True, env=environment, check=True
    )
    return int(result.stdout.split()[-1])


def huge_pages_always() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as file:
            return "[always]" in file.read()
    except OSError:
        return False


def test_the_bfc_allocator_stops_the_page_faults_of_large_activations():
    assert faults_of_a_call(None) < 16_384 / 4
    if huge_pages_always():
        pytest.skip("with 2 MiB pages the default allocator's faults are few too: nothing to compare")
    default = faults_of_a_call("false")
    if default < 16_384:
        pytest.skip(f"this machine's malloc reuses large blocks ({default} faults without BFC): nothing to compare")
    # Without BFC each of the three 64 MiB outputs is mapped anew: 3 x 16,384 pages of 4 KiB.
    assert default > 3 * 16_384 * 0.9


def test_an_explicit_setting_is_kept(monkeypatch):
    monkeypatch.setenv(BFC_VARIABLE, "false")
    prefer_bfc_allocator()
    assert os.environ[BFC_VARIABLE] == "false" and cpu_allocator() == "default"
    monkeypatch.delenv(BFC_VARIABLE)
    prefer_bfc_allocator()
    assert cpu_allocator() == "bfc"


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this system")
def test_a_signal_inherited_as_ignored_stays_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        assert {signal.SIGTERM, signal.SIGHUP} <= set(stop_signals())
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup leaves it
        assert signal.SIGHUP not in stop_signals() and signal.SIGTERM in stop_signals()
    finally:
        signal.signal(signal.SIGHUP, previous)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this system")
def test_stop_signals_raise_an_interrupt_with_their_exit_status_and_leave_ignored_ones_ignored():
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup leaves it
    try:
        with pytest.raises(Interrupted) as raised, stop_signals_interrupt():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            signal.raise_signal(signal.SIGTERM)
        assert exit_status(raised.value) == 143 and exit_status(KeyboardInterrupt()) == 130
        assert signal.getsignal(signal.SIGTERM) is previous[signal.SIGTERM]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
