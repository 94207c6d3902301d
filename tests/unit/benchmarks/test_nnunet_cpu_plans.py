"""The CPU-sized nnU-Net plans of benchmarks/nnunet_brain_tumour.py (peer benchmark)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "nnunet_brain_tumour", ROOT / "benchmarks" / "nnunet_brain_tumour.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _default_plans() -> dict:
    # the fields nnU-Net 2.8.1 planned for these cases (3d_fullres), abridged
    arch = {
        "n_stages": 6,
        "features_per_stage": [32, 64, 128, 256, 320, 320],
        "kernel_sizes": [[3, 3, 3]] * 6,
        "strides": [[1, 1, 1]] + [[2, 2, 2]] * 4 + [[2, 1, 2]],
        "n_conv_per_stage": [2] * 6,
        "n_conv_per_stage_decoder": [2] * 5,
        "conv_bias": True,
    }
    config = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "batch_size": 2,
        "patch_size": [128, 80, 128],
        "spacing": [2.0, 1.987, 2.0],
        "architecture": {"arch_kwargs": arch},
    }
    return {"plans_name": "nnUNetPlans", "configurations": {"3d_fullres": config}}


@pytest.mark.parametrize(
    ("patch", "features"),
    [(48, [32, 64, 128, 256]), (64, [32, 64, 128, 256, 320])],
)
def test_cpu_plans_change_only_the_patch_and_its_stages(bench, tmp_path, patch, features):
    folder = tmp_path / "preprocessed" / bench.DATASET
    folder.mkdir(parents=True)
    default = json.dumps(_default_plans())
    (folder / "nnUNetPlans.json").write_text(default)
    name = bench.write_cpu_plans(tmp_path, patch)
    assert name == f"nnUNetPlansCPU{patch}"
    assert (folder / "nnUNetPlans.json").read_text() == default  # the default plans untouched
    plans = json.loads((folder / f"{name}.json").read_text())
    config = plans["configurations"]["3d_fullres"]
    arch = config["architecture"]["arch_kwargs"]
    stages = len(features)
    assert plans["plans_name"] == name
    assert config["patch_size"] == [patch] * 3
    assert arch["n_stages"] == stages
    assert arch["features_per_stage"] == features
    assert arch["strides"] == [[1, 1, 1]] + [[2, 2, 2]] * (stages - 1)
    assert len(arch["kernel_sizes"]) == len(arch["n_conv_per_stage"]) == stages
    assert len(arch["n_conv_per_stage_decoder"]) == stages - 1
    # the smallest feature map is at least 4 voxels and the patch divides evenly
    assert patch // 2 ** (stages - 1) >= 4
    assert patch % 2 ** (stages - 1) == 0
    # what the plans do not mention stays nnU-Net's
    assert config["batch_size"] == 2
    assert config["data_identifier"] == "nnUNetPlans_3d_fullres"
    assert arch["conv_bias"] is True


def test_metrics_file_names_keep_the_default_plans_names(bench):
    assert bench._metrics_name("nnUNetPlans", 1) == "fold1_metrics.json"
    assert bench._metrics_name("nnUNetPlansCPU48", 2) == "nnUNetPlansCPU48_fold2_metrics.json"
