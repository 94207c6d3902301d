"""Tiny real plans for training tests: the MSD spleen crop with 32×32×8 patches."""

from __future__ import annotations

from pathlib import Path

import pytest

from medseg.io import DatasetManifest, Split, load_manifest
from medseg.transforms import Plans, compute_fingerprint, compute_layout, plan_from_fingerprint


@pytest.fixture(scope="session")
def spleen_manifest(repo_root: Path) -> DatasetManifest:
    return load_manifest(repo_root / "data_manifests" / "ct_msd_spleen.yaml")


@pytest.fixture(scope="session")
def tiny_spleen_plans(spleen_manifest: DatasetManifest, repo_root: Path) -> Plans:
    fingerprint = compute_fingerprint(spleen_manifest, root=repo_root, splits=[Split.TEST])
    plans = plan_from_fingerprint(fingerprint, memory_budget_gb=1.0, features=4)
    patch = [32, 32, 8]
    kernels, strides = compute_layout(
        patch_size=patch, spacing_mm=plans.target_spacing_mm, max_depth=2
    )
    return plans.model_copy(
        update={
            "patch_size": patch,
            "strides": strides,
            "kernel_sizes": kernels,
            "batch_size": 2,
            "foreground_oversampling": 0.5,
        }
    )
