import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
SHARED_DATASETS = os.path.join(SHARED, "datasets")
OFFICIAL_WEIGHTS = os.path.join(SHARED, "reference", "VDSR_Official.mat")

requires_shared = pytest.mark.skipif(
    not os.path.isfile(OFFICIAL_WEIGHTS) or not os.path.isdir(SHARED_DATASETS),
    reason="needs ../shared (datasets and VDSR_Official.mat) beside the project root",
)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
