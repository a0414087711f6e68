"""The training state on disk: `<checkpoint_dir>/state/ckpt-<step>`, restored with fallbacks.

TensorFlow's CheckpointManager finds the latest state through the small
`state/checkpoint` index file. A kill can leave that index missing or the
newest `ckpt-N` damaged while older ones are intact; the state is then found
from the files themselves, newest intact first, and the damaged ones are
named in the log and removed. Nothing is silently started over.
"""

import glob
import os
import re
import shutil
import time
from typing import NamedTuple

import tensorflow as tf
from absl import logging
from google.protobuf import text_format

from vdsr_tf.atomic import atomic_path, unused_path

STATE_NAME = "state"
_CHECKPOINT_INDEX = re.compile(r"ckpt-(\d+)\.index$")


class StateError(ValueError):
    """A state folder that holds checkpoint files of which none can be restored."""


def state_dir(checkpoint_dir: str) -> str:
    return os.path.join(checkpoint_dir, STATE_NAME)


def saved_states(directory: str) -> list[str]:
    """The `ckpt-N` prefixes in `directory`, newest first, from the files present (not the index)."""
    found = []
    for path in glob.glob(os.path.join(directory, "ckpt-*.index")):
        match = _CHECKPOINT_INDEX.fullmatch(os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path[: -len(".index")]))
    return [prefix for _, prefix in sorted(found, reverse=True)]


class SavedOptimizer(NamedTuple):
    name: str  # "sgd" or "adam"
    momentum: bool  # whether it keeps a slot a variable beside the weights (SGD with momentum; Adam)


def saved_optimizer(prefixes: list[str]) -> SavedOptimizer | None:
    """The optimizer whose slots the newest readable of the saved states holds (None: not known).

    Keras keeps no slot for SGD without momentum, one a variable with it, two for Adam; a resume
    needs the same.
    """
    for prefix in prefixes:
        try:
            names = [name for name, _ in tf.train.list_variables(prefix)]
        except (tf.errors.OpError, ValueError):
            continue
        variables = sum(name.startswith("optimizer/_trainable_variables/") for name in names)
        slots = sum(name.startswith("optimizer/_variables/") for name in names)
        kinds = {0: ("sgd", False), variables: ("sgd", True), 2 * variables: ("adam", True)}
        return SavedOptimizer(*kinds[slots]) if variables and slots in kinds else None
    return None


def remove_partial_saves(directory: str) -> None:
    """Removes the `ckpt-N_temp` folders a save killed half-way leaves."""
    for path in glob.glob(os.path.join(directory, "*_temp*")):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            logging.info("removed %s, left by an interrupted save", path)


def _remove_state_files(prefix: str) -> None:
    for path in glob.glob(prefix + ".*"):
        os.remove(path)


def restore_newest(checkpoint: tf.train.Checkpoint, core: tf.train.Checkpoint, directory: str) -> str | None:
    """Restores the newest intact state in `directory` into `checkpoint`; returns its prefix (None: none saved).

    `core` holds what every state must match (weights, optimizer, step);
    `checkpoint` may hold more that older states lack. Newer damaged states
    are removed, and the index is rewritten to list the intact ones.

    Raises:
      StateError: naming the folder, if it holds states but none is readable.
    """
    orphans = [
        path
        for path in glob.glob(os.path.join(directory, "ckpt-*.data-*"))
        if not os.path.exists(path.split(".data-")[0] + ".index")
    ]
    prefixes = saved_states(directory)
    if not prefixes and not orphans:
        return None
    for position, prefix in enumerate(prefixes):
        try:
            core.restore(prefix).expect_partial().assert_existing_objects_matched()
            checkpoint.restore(prefix).expect_partial()
        except (tf.errors.OpError, ValueError, IndexError, AssertionError) as error:
            logging.warning("%s: damaged (%s); trying the one before", prefix, str(error).splitlines()[0][:200])
            continue
        for damaged in prefixes[:position] + orphans:
            _remove_state_files(damaged.split(".data-")[0])
            logging.warning("removed the damaged state %s", damaged)
        intact = [p for p in prefixes[position:] if os.path.exists(p + ".index")]
        _write_index(directory, prefix, intact[::-1])
        if position:
            logging.warning("resumed from %s, the newest intact state", prefix)
        return prefix
    raise StateError(
        f"{directory}: holds training states but none can be restored; move it away or pass --restart "
        "to start afresh (the folder is then kept as previous-<time>/)"
    )


def _write_index(directory: str, latest: str, prefixes: list[str]) -> None:
    """Writes the `checkpoint` index CheckpointManager reads (tf.compat.v1's writer prints a deprecation).

    Each state's timestamp (its .index file's time) and a preserved-before time under them are
    written too: CheckpointManager deletes beyond `max_to_keep` only states it has timestamps for.
    """
    times = [os.path.getmtime(prefix + ".index") for prefix in prefixes]
    index = tf.compat.v1.train.generate_checkpoint_state_proto(
        directory,
        os.path.relpath(latest, directory),
        all_model_checkpoint_paths=[os.path.relpath(prefix, directory) for prefix in prefixes],
        all_model_checkpoint_timestamps=times,
        last_preserved_timestamp=min(times) - 1.0,
    )
    with atomic_path(os.path.join(directory, "checkpoint")) as temporary:
        with open(temporary, "w") as file:
            file.write(text_format.MessageToString(index))


def set_aside(checkpoint_dir: str, names: list[str]) -> str | None:
    """Moves the named files and folders of `checkpoint_dir` into `previous-<time>/`; returns that folder."""
    present = [name for name in names if os.path.exists(os.path.join(checkpoint_dir, name))]
    if not present:
        return None
    target = unused_path(os.path.join(checkpoint_dir, time.strftime("previous-%Y%m%d-%H%M%S")))
    os.makedirs(target)
    for name in present:
        os.replace(os.path.join(checkpoint_dir, name), os.path.join(target, name))
    logging.warning("starting afresh: kept %s of the earlier run in %s", ", ".join(present), target)
    return target
