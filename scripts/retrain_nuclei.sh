#!/usr/bin/env bash
# Retrain the shipped `--model nuclei` from scratch, in one command (CPU, one torch thread; see
# medseg/models/shipped/nuclei/MODEL.yaml for the CPU seconds each stage took):
#   bash scripts/retrain_nuclei.sh [RUN_DIR] [SHIP_DIR]
# 1. trains the 3-class U-Net (background / interior / boundary) on the 564 training images of
#    data_manifests/cells_dsb2018_full.yaml (60 bundled + 544 from
#    ../shared/data/cells_dsb2018/train_extra; 40 held out as split `validation`), bf16
#    autocast, 20 epochs x 100 steps of 8 patches -> RUN_DIR/nuclei_full;
# 2. fine-tunes it with a fourth class, each nucleus' core (target instance_core: the seeds of
#    the marker watershed), 20 epochs x 100 steps -> RUN_DIR/nuclei_core;
# 3. trains that on with the stained images drawn more often (sampling_weights: H&E 3x,
#    brightfield 4x) at a lower rate -> RUN_DIR/nuclei_stain;
# 4. trains that on with the cross-entropy of the contact band between touching nuclei
#    weighted 5x (contact_weight) -> RUN_DIR/nuclei_contact;
# 5. chooses the watershed settings (seed split included) and the nucleus-size zoom on the 40
#    validation images with mirror TTA (pooled F1@0.5) and writes SHIP_DIR/checkpoint.pt
#    (float16 weights, settings, TTA on by default) and SHIP_DIR/ship_summary.json.
# The 20 test images are used by no step. Copy SHIP_DIR/checkpoint.pt to
# medseg/models/shipped/nuclei/ to ship it.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs}
SHIP=${2:-runs/ship_nuclei}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MLFLOW_DISABLE_TELEMETRY=true
PYTHONPATH=. "$PY" -m medseg train configs/training/cells_dsb2018_full_unet2d.yaml \
    --out "$RUN/nuclei_full"
CORE_CONFIG=configs/training/cells_dsb2018_full_core_unet2d.yaml
STAIN_CONFIG=configs/training/cells_dsb2018_full_core_stain_unet2d.yaml
CONTACT_CONFIG=configs/training/cells_dsb2018_full_core_contact_unet2d.yaml
if [ "$RUN" != runs ]; then  # each stage starts from this run's previous stage
    CORE_CONFIG="$RUN/cells_dsb2018_full_core_unet2d.yaml"
    sed "s#^init_weights: .*#init_weights: $RUN/nuclei_full/checkpoint_best.pt#" \
        configs/training/cells_dsb2018_full_core_unet2d.yaml > "$CORE_CONFIG"
    STAIN_CONFIG="$RUN/cells_dsb2018_full_core_stain_unet2d.yaml"
    sed "s#^init_weights: .*#init_weights: $RUN/nuclei_core/checkpoint_best.pt#" \
        configs/training/cells_dsb2018_full_core_stain_unet2d.yaml > "$STAIN_CONFIG"
    CONTACT_CONFIG="$RUN/cells_dsb2018_full_core_contact_unet2d.yaml"
    sed "s#^init_weights: .*#init_weights: $RUN/nuclei_stain/checkpoint_best.pt#" \
        configs/training/cells_dsb2018_full_core_contact_unet2d.yaml > "$CONTACT_CONFIG"
fi
PYTHONPATH=. "$PY" -m medseg train "$CORE_CONFIG" --out "$RUN/nuclei_core"
PYTHONPATH=. "$PY" -m medseg train "$STAIN_CONFIG" --out "$RUN/nuclei_stain"
PYTHONPATH=. "$PY" -m medseg train "$CONTACT_CONFIG" --out "$RUN/nuclei_contact"
mkdir -p "$SHIP"
PYTHONPATH=. "$PY" scripts/ship_instance_model.py --run "$RUN/nuclei_contact" --out "$SHIP" --tta \
    --zoom --cache "$SHIP/val_probabilities.npz" --recipe \
    configs/training/cells_dsb2018_full_unet2d.yaml "$CORE_CONFIG" "$STAIN_CONFIG" "$CONTACT_CONFIG"
