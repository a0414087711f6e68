"""Kills short training runs with SIGKILL at random moments until they finish, then checks what they left.

    python benchmarks/kill_soak.py [--kills=20] [--seed=0] [--work_dir=/tmp/vdsr-soak]

A depth-3 network on a small patch file trains `--epochs` epochs of 10 steps,
saving every step. One uninterrupted run is the reference. A soaked run is
started again and again, each time killed after a random delay of up to half
the reference run's duration (start-up, steps, saves and validations all get
hit), until it gets through to its end; soaked runs follow one another until
`--kills` kills are done, and each is checked. Reported: kills, resumes that failed (a non-zero exit that
was not our kill), unreadable files, a `vdsr.h5` not at the final step,
missing record rows, leftover temporary files, and the largest weight
difference from the reference (0 means bit-identical).
"""

import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags
from PIL import Image

from vdsr_tf.data import PatchSettings, generate_training_h5
from vdsr_tf.model import read_weights
from vdsr_tf.paths import ROOT

flags.DEFINE_integer("kills", 20, "SIGKILLs to deliver before letting the run finish.")
flags.DEFINE_integer("seed", 0, "Seed of the kill delays.")
flags.DEFINE_string(
    "work_dir", "/tmp/vdsr-soak", "Scratch folder: a new one, or one an earlier soak made (it is emptied first)."
)
flags.DEFINE_integer("epochs", 20, "Epochs of 10 steps.", lower_bound=1)
FLAGS = flags.FLAGS


def make_data(folder: str) -> tuple[str, str]:
    generator = np.random.default_rng(5)
    smooth = np.cumsum(np.cumsum(generator.random((90, 100, 3)), axis=0), axis=1)
    image = (255 * smooth / smooth.max()).astype(np.uint8)
    for sub in ("train/T91", "test/Set5"):
        os.makedirs(os.path.join(folder, sub))
    Image.fromarray(image).save(os.path.join(folder, "train/T91/a.png"))
    Image.fromarray(image[:48, :60]).save(os.path.join(folder, "test/Set5/x.png"))
    train_h5 = os.path.join(folder, "train.h5")
    paths = [os.path.join(folder, "train/T91/a.png")]
    generate_training_h5(paths, train_h5, settings=PatchSettings(patch_size=21, stride=10), seed=0, workers=1)
    return folder, train_h5


def command(data_dir: str, train_h5: str, checkpoint_dir: str) -> list[str]:
    return [
        sys.executable,
        os.path.join(ROOT, "main.py"),
        "--is_train=True",
        f"--data_dir={data_dir}",
        f"--train_h5={train_h5}",
        f"--checkpoint_dir={checkpoint_dir}",
        "--depth=3",
        "--width=8",
        "--batch_size=8",
        "--steps_per_epoch=10",
        f"--epochs={FLAGS.epochs}",
        "--save_every_minutes=0.0001",
        f"--tensorboard_dir={checkpoint_dir}/logs",
        "--precision=float32",
    ]


def soak(arguments: list[str], kills: int, generator: random.Random, max_delay: float) -> dict:
    counts = {"kills": 0, "failed_resumes": 0, "starts": 0}
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    while True:
        counts["starts"] += 1
        with tempfile.TemporaryFile() as log:  # a pipe left unread would stall a run that logs more than it holds
            process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=log, env=environment)
            if counts["kills"] < kills:
                try:
                    process.wait(timeout=generator.uniform(0.5, max_delay))
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    counts["kills"] += 1
                    continue
            else:
                process.wait()
            if process.returncode == 0:
                return counts
            counts["failed_resumes"] += 1
            log.seek(0)
            print(log.read().decode()[-800:])
        if counts["failed_resumes"] > 3:
            return counts


def check(checkpoint_dir: str, reference_dir: str) -> dict:
    found = {"unreadable_files": 0, "stale_vdsr_h5": 0, "missing_record_rows": 0, "leftover_temporaries": 0}
    try:
        weights, attributes = read_weights(os.path.join(checkpoint_dir, "vdsr.h5"))
        found["stale_vdsr_h5"] = int(attributes["step"] != 10 * FLAGS.epochs)
    except ValueError:
        found["unreadable_files"] += 1
        weights = None
    try:
        record = json.load(open(os.path.join(checkpoint_dir, "training_record.json")))
        ends = set(range(10, 10 * FLAGS.epochs + 1, 10))
        missing = (ends | {0}) - {row["step"] for row in record["validation"]}
        missing_loss = ends - {row["step"] for row in record["training_loss"]}
        found["missing_record_rows"] = len(missing) + len(missing_loss)
    except (OSError, ValueError):
        found["unreadable_files"] += 1
    leftovers = glob.glob(os.path.join(checkpoint_dir, "**", ".tmp-*"), recursive=True)
    leftovers += glob.glob(os.path.join(checkpoint_dir, "state", "*_temp*"))
    found["leftover_temporaries"] = len(leftovers)
    reference, _ = read_weights(os.path.join(reference_dir, "vdsr.h5"))
    if weights is not None:
        found["max_weight_difference"] = max(
            float(np.max(np.abs(a - b))) for pair_a, pair_b in zip(weights, reference) for a, b in zip(pair_a, pair_b)
        )
    return found


MARK = ".kill_soak"  # in the work folder: emptying it loses only an earlier soak's scratch files


def main(argv):
    del argv
    if os.path.isdir(FLAGS.work_dir) and os.listdir(FLAGS.work_dir):
        if not os.path.isfile(os.path.join(FLAGS.work_dir, MARK)):
            sys.exit(
                f"error: --work_dir: {FLAGS.work_dir} has files but no {MARK} mark of this script; give a new folder"
            )
        shutil.rmtree(FLAGS.work_dir)
    if os.path.exists(FLAGS.work_dir) and not os.path.isdir(FLAGS.work_dir):
        sys.exit(f"error: --work_dir: {FLAGS.work_dir} is a file; give a folder")
    os.makedirs(FLAGS.work_dir, exist_ok=True)
    open(os.path.join(FLAGS.work_dir, MARK), "w").close()
    data_dir, train_h5 = make_data(os.path.join(FLAGS.work_dir, "data"))
    reference = os.path.join(FLAGS.work_dir, "reference")
    started = time.time()
    finished = subprocess.run(command(data_dir, train_h5, reference), capture_output=True, text=True)
    if finished.returncode:
        sys.exit(f"error: the reference run failed: {(finished.stderr.strip().splitlines() or ['no output'])[-1]}")
    duration = time.time() - started
    print(f"reference run: {duration:.0f} s")
    totals, runs = {}, 0
    generator = random.Random(FLAGS.seed)
    while totals.get("kills", 0) < FLAGS.kills:
        soaked = os.path.join(FLAGS.work_dir, f"soaked{runs}")
        counts = soak(command(data_dir, train_h5, soaked), FLAGS.kills, generator, duration / 2)
        found = check(soaked, reference)
        runs += 1
        for key, value in {**counts, **found}.items():
            totals[key] = (
                max(totals.get(key, 0), value) if key == "max_weight_difference" else totals.get(key, 0) + value
            )
    print(json.dumps({"runs": runs, **totals}, indent=1))
    failures = ("failed_resumes", "unreadable_files", "stale_vdsr_h5", "missing_record_rows", "leftover_temporaries")
    return 1 if any(totals.get(key) for key in failures) or totals.get("max_weight_difference") else 0


if __name__ == "__main__":
    app.run(main)
