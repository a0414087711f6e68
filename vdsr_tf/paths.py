"""Where the project finds its data by default."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA_DIR = os.path.join(ROOT, "..", "shared", "datasets")
EMBEDDED_DATA_DIR = os.path.join(ROOT, "data", "datasets")
WEIGHTS_NAME = "vdsr.h5"  # inside a checkpoint folder: the weights evaluation and inference load
# Where `pip install .` puts checkpoints/vdsr.h5 (pyproject.toml maps vdsr_tf.weights to checkpoints/).
INSTALLED_WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")


def default_data_dir() -> str:
    """../shared/datasets beside the project when it exists, else the source tree's data/datasets; an
    installed package has neither, and then ./data/datasets is looked for."""
    if os.path.isdir(SHARED_DATA_DIR):
        return os.path.normpath(SHARED_DATA_DIR)
    if os.path.isdir(EMBEDDED_DATA_DIR):
        return EMBEDDED_DATA_DIR
    return os.path.join("data", "datasets")


def default_checkpoint_dir() -> str:
    """./checkpoints when the current folder has weights there, else the folder of the weights shipped with the
    project: those a non-editable install put in the package, or the source tree's checkpoints/."""
    if os.path.isfile(os.path.join("checkpoints", WEIGHTS_NAME)):
        return "checkpoints"
    for folder in (INSTALLED_WEIGHTS_DIR, os.path.join(ROOT, "checkpoints")):
        if os.path.isfile(os.path.join(folder, WEIGHTS_NAME)):
            return folder
    return "checkpoints"
