"""Shared fixtures: repository paths and the gpu marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Converted SAM encoders (OpenVINO) are cached per checkout, never in the user's home; the
# variable reaches the CLI subprocesses the tests start.
os.environ["XDG_CACHE_HOME"] = str(REPO_ROOT / ".pytest_cache" / "xdg")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout: holds data/ and data_manifests/."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def ct_dicom_dir(repo_root: Path) -> Path:
    """The bundled real 20-slice CT DICOM series (TotalSegmentator test data)."""
    return repo_root / "data" / "ct_totalsegmentator" / "example_ct_dicom"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests when CUDA is absent (CI has none)."""
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
