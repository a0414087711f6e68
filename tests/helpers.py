"""What several test modules share: the project's paths and running the command line as a user would.

Importable as `helpers` through pytest.ini's pythonpath; fixtures live in conftest.py.
"""

import os
import signal
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
SHARED_DATASETS = os.path.join(SHARED, "datasets")
OFFICIAL_WEIGHTS = os.path.join(SHARED, "reference", "VDSR_Official.mat")

requires_shared = pytest.mark.skipif(
    not os.path.isfile(OFFICIAL_WEIGHTS) or not os.path.isdir(SHARED_DATASETS),
    reason="needs ../shared (datasets and VDSR_Official.mat) beside the project root",
)


def run_main(*flags, cwd=ROOT, environment=None):
    """Runs main.py in a subprocess, as a user would, from `cwd`.

    `environment` updates the inherited one (TF_CPP_MIN_LOG_LEVEL=3 unless it says otherwise); a value of
    None removes that variable.
    """
    merged = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(environment or {})}
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "main.py"), *flags],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={key: value for key, value in merged.items() if value is not None},
    )


def last_line(result):
    return result.stderr.strip().splitlines()[-1]


def as_in_a_terminal():
    """The SIGINT and SIGHUP a process started from a terminal finds (a background job or nohup, as CI
    may run, inherits them ignored): a subprocess's preexec_fn."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
