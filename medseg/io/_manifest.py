"""Dataset manifests: cases, per-file sha256, source, licence and citation.

A manifest is one YAML file in ``data_manifests/``; its file paths are relative to the
folder that holds ``data_manifests/`` (the repository root).
"""

from __future__ import annotations

import enum
from pathlib import Path

from pydantic import Field, field_validator

from medseg.core import (
    CASE_ID_PATTERN,
    ConfigModel,
    IntegrityError,
    compute_sha256,
    load_config,
)


class Split(str, enum.Enum):
    """Which part of a dataset a case belongs to."""

    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"
    DEMO = "demo"


class ReferenceStandard(str, enum.Enum):
    """How the reference labels were made."""

    MANUAL = "manual"
    SILVER = "silver"  # model output, e.g. TotalSegmentator
    NONE = "none"


class Source(ConfigModel):
    """Where the data came from: a repository at a commit, or a package at a version."""

    repository: str | None = None
    commit: str | None = None
    package: str | None = None
    version: str | None = None
    path: str | None = None
    url_note: str | None = None


class ManifestFile(ConfigModel):
    """One file and its SHA-256."""

    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Case(ConfigModel):
    """One case: an image (file or DICOM folder), optional reference label, region mask and
    further co-registered images (e.g. other MR sequences, keyed by channel name)."""

    id: str = Field(pattern=CASE_ID_PATTERN)
    image: str
    label: str | None = None
    roi: str | None = None
    additional_images: dict[str, str] = Field(default_factory=dict)
    split: Split
    modality: str | None = None
    notes: str | None = None


class DatasetManifest(ConfigModel):
    """A dataset as shipped in the repository."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str
    modality: str
    reference_standard: ReferenceStandard
    labels: dict[int, str] = Field(default_factory=dict)
    source: Source
    licence: str
    citation: str
    deid_status: str
    cases: list[Case]
    files: list[ManifestFile]

    @field_validator("cases")
    @classmethod
    def _unique_case_ids(cls, cases: list[Case]) -> list[Case]:
        ids = [case.id for case in cases]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"case ids must be unique; repeated: {', '.join(duplicates)}")
        return cases

    def case(self, case_id: str) -> Case:
        """Return the case called ``case_id``."""
        for case in self.cases:
            if case.id == case_id:
                return case
        raise KeyError(case_id)


def load_manifest(path: str | Path) -> DatasetManifest:
    """Read and validate a dataset manifest YAML file."""
    return load_config(path, DatasetManifest)


def manifest_root(manifest_path: str | Path) -> Path:
    """Folder that manifest paths are relative to: the parent of ``data_manifests/``."""
    return Path(manifest_path).resolve().parent.parent


def find_manifest_problems(manifest: DatasetManifest, *, root: str | Path) -> list[str]:
    """Re-hash every listed file; return one line per missing or altered file or case path."""
    root = Path(root)
    problems: list[str] = []
    listed = set()
    for entry in manifest.files:
        listed.add(entry.path)
        file_path = root / entry.path
        if not file_path.is_file():
            problems.append(f"{entry.path}: missing")
            continue
        actual = compute_sha256(file_path)
        if actual != entry.sha256:
            problems.append(
                f"{entry.path}: altered (sha256 {actual[:12]}…, expected {entry.sha256[:12]}…)"
            )
    for case in manifest.cases:
        roles = [("image", case.image), ("label", case.label), ("roi", case.roi)]
        roles += [(f"image {name}", rel) for name, rel in case.additional_images.items()]
        for role, rel in roles:
            if rel is None:
                continue
            covered = rel in listed or any(p.startswith(rel.rstrip("/") + "/") for p in listed)
            if not covered:
                problems.append(f"{rel}: case {case.id} {role} is not listed under files")
            elif not (root / rel).exists():
                problems.append(f"{rel}: case {case.id} {role} missing")
    return problems


def verify_manifest(path: str | Path) -> DatasetManifest:
    """Load a manifest and check every file; raise IntegrityError listing each problem."""
    manifest = load_manifest(path)
    problems = find_manifest_problems(manifest, root=manifest_root(path))
    if problems:
        raise IntegrityError(f"{len(problems)} problem(s): " + "; ".join(problems), path=path)
    return manifest
