"""Where the project finds its data by default."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA_DIR = os.path.join(ROOT, "..", "shared", "datasets")
EMBEDDED_DATA_DIR = os.path.join(ROOT, "data", "datasets")
WEIGHTS_NAME = "vdsr.h5"  # inside a checkpoint folder: the weights evaluation and inference load


def default_data_dir() -> str:
    """../shared/datasets beside the project when it exists, else the embedded data/datasets."""
    if os.path.isdir(SHARED_DATA_DIR):
        return os.path.normpath(SHARED_DATA_DIR)
    return EMBEDDED_DATA_DIR
