#!/usr/bin/env bash
# Classic Cellpose (3.1.1.3, CPnet U-Net, trainable from scratch) for the nuclei benchmark:
#   bash benchmarks/cellpose/setup_venv3.sh [/work/venvs/cellpose3] [/work/venvs/cellpose]
# Reuses the Cellpose 4 venv's packages (torch, numpy, opencv, ...; setup_venv.sh) through a .pth
# file instead of a second 5 GB torch, and installs cellpose 3.1.1.3 (without its numpy<2.1 pin,
# which Cellpose 3's training and inference run without) plus numba into its own site-packages.
set -euo pipefail
VENV=${1:-/work/venvs/cellpose3}
BASE=${2:-/work/venvs/cellpose}
python3 -m venv "$VENV"
SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
"$BASE/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" \
    > "$SITE/_cellpose4_deps.pth"
"$VENV/bin/pip" install --quiet --no-deps "cellpose==3.1.1.3"
"$VENV/bin/pip" install --quiet numba
"$VENV/bin/python" -c "import cellpose.version as v, torch; print('cellpose', v.version, 'torch', torch.__version__)"
