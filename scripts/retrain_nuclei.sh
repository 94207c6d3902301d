#!/usr/bin/env bash
# Retrain the shipped `--model nuclei` from scratch, in one command (CPU; ~8 CPU-minutes of
# training, see medseg/models/shipped/nuclei/MODEL.yaml):
#   bash scripts/retrain_nuclei.sh [RUN_DIR] [SHIP_DIR]
# 1. trains the 3-class U-Net on the 564 training images of data_manifests/cells_dsb2018_full.yaml
#    (60 bundled + 544 from ../shared/data/cells_dsb2018/train_extra; 40 held out as split
#    `validation`), bf16 autocast, 20 epochs x 100 steps of 8 patches;
# 2. chooses the watershed settings on the 40 validation images with mirror TTA (pooled F1@0.5)
#    and writes SHIP_DIR/checkpoint.pt (float16 weights, settings, TTA on by default).
# The 20 test images are used by neither step. Copy SHIP_DIR/checkpoint.pt to
# medseg/models/shipped/nuclei/ to ship it.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/nuclei_full}
SHIP=${2:-runs/ship_nuclei}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MLFLOW_DISABLE_TELEMETRY=true
PYTHONPATH=. "$PY" -m medseg train configs/training/cells_dsb2018_full_unet2d.yaml --out "$RUN"
mkdir -p "$SHIP"
PYTHONPATH=. "$PY" scripts/ship_instance_model.py --run "$RUN" --out "$SHIP" --tta \
    --cache "$SHIP/val_probabilities.npz"
