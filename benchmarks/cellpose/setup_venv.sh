#!/usr/bin/env bash
# Cellpose peer for the nuclei benchmark, in its own venv (never in the project's):
#   bash benchmarks/cellpose/setup_venv.sh [/work/venvs/cellpose]
# cellpose 4.2.1.1 from PyPI (it pulls torch); its pretrained weights are not reachable here,
# so benchmarks/cellpose/train_cellpose.py trains one from scratch.
set -euo pipefail
VENV=${1:-/work/venvs/cellpose}
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "cellpose==4.2.1.1" tifffile pyyaml
"$VENV/bin/python" -c "import cellpose, torch; print('cellpose', cellpose.version, 'torch', torch.__version__)"
