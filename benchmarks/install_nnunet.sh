#!/usr/bin/env bash
# Install nnU-Net v2 (the peer of the brain-tumour model) into its own venv, never the project's:
# nnunetv2 pins timm < 1.0.23. Usage: bash benchmarks/install_nnunet.sh [/work/venvs/nnunet]
set -euo pipefail
VENV="${1:-/work/venvs/nnunet}"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "nnunetv2==2.8.1"
"$VENV/bin/python" -c "import nnunetv2, torch; print('nnunetv2', nnunetv2.__file__, 'torch', torch.__version__)"
# the CPU-budget trainer of benchmarks/nnunet_brain_tumour.py (nnU-Net finds trainers in its package)
SITE="$("$VENV/bin/python" -c 'import nnunetv2, os; print(os.path.dirname(nnunetv2.__file__))')"
cp "$(dirname "$0")/nnunet/nnUNetTrainerCPUBudget.py" "$SITE/training/nnUNetTrainer/variants/"
