"""MultiWorkerMirroredStrategy from TF_CONFIG: two worker processes on 127.0.0.1 train like one process."""

import dataclasses
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT

from vdsr_tf.distribute import cluster_from_environment
from vdsr_tf.model import read_weights
from vdsr_tf.train import train

_WORKER = """
import sys
from vdsr_tf.config import TrainConfig
from vdsr_tf.train import train
train(TrainConfig(**eval(sys.argv[1])))
"""


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_two_workers_train_like_one_process(tiny_training, tmp_path):
    config = dataclasses.replace(tiny_training, max_steps=3, checkpoint_dir=str(tmp_path / "two"))
    settings = repr({field.name: getattr(config, field.name) for field in dataclasses.fields(config)})
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        environment = dict(os.environ, TF_CONFIG=tf_config, TF_CPP_MIN_LOG_LEVEL="2")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", _WORKER, settings],
                cwd=ROOT,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    assert outputs[0][0].strip().endswith(f"saved step 3 to {config.checkpoint_dir}")
    assert "saved step" not in outputs[1][0]  # only the chief writes where the user asked
    train(dataclasses.replace(config, checkpoint_dir=str(tmp_path / "one")))
    two, _ = read_weights(str(tmp_path / "two" / "vdsr.h5"))
    one, _ = read_weights(str(tmp_path / "one" / "vdsr.h5"))
    # Each worker computes the gradient of its half of every global batch; the halves are summed
    # before the clip, so both runs take the same steps up to float32 reduction order.
    assert max(float(np.max(np.abs(a[0] - b[0]))) for a, b in zip(one, two)) < 1e-5


@pytest.mark.parametrize(
    "text,message",
    [
        ("{not json", "TF_CONFIG: not a JSON object"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "TF_CONFIG: this task"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "chief", "index": 0}}', "TF_CONFIG: this task"),
    ],
)
def test_a_bad_tf_config_names_it(monkeypatch, text, message):
    monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(ValueError, match=message):
        cluster_from_environment()


def test_a_one_task_tf_config_is_no_cluster(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}}')
    assert cluster_from_environment() is None
