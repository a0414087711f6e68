#!/usr/bin/env bash
# Sets up a virtual environment and runs the main job: evaluation of the default
# checkpoint, printed as the paper's Table 3. Extra arguments go to main.py, e.g.
#   bash run.sh --test_datasets=Set5,Set14
set -euo pipefail
cd "$(dirname "$0")"
venv=${VDSR_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  echo "making $venv and installing the requirements (the first time downloads TensorFlow: some minutes)"
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
# The project itself, editable: the `vdsr` command, and vdsr_tf importable by data/ and benchmarks/ scripts.
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -e .
official=../shared/reference/VDSR_Official.mat
if [ ! -f checkpoints/vdsr.h5 ]; then
  if [ -f "$official" ]; then
    echo "checkpoints/vdsr.h5 is missing: importing the authors' weights from $official"
    "$venv/bin/python" main.py --import_matconvnet="$official" --checkpoint_dir=checkpoints
  else
    echo "error: no checkpoints/vdsr.h5 and no $official to import" >&2
    exit 1
  fi
fi
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec "$venv/bin/python" main.py --is_train=False "$@"
