"""Dataset manifests: cases, per-file sha256, source, licence and citation.

A manifest is one YAML file. Its paths are relative to its ``root:``, which is itself
relative to the manifest file and defaults to the manifest's own folder; a manifest in a
folder named ``data_manifests/`` (the bundled datasets) defaults to that folder's parent,
the checkout. :func:`manifest_root` is the one rule, used by every command.

For private data only ``cases`` is required (three lines); the provenance fields (source,
licence, citation, de-identification status, per-file sha256) are then recorded as
``unknown``. A plain folder or an nnU-Net ``dataset.json`` is read as a manifest too
(:func:`load_cases`).
"""

from __future__ import annotations

import enum
import re
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
    UNKNOWN = "unknown"  # private data whose provenance is not stated


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
    split: Split = Split.TEST
    modality: str | None = None
    notes: str | None = None


#: What an unstated provenance field is recorded as.
UNKNOWN = "unknown"


class DatasetManifest(ConfigModel):
    """A dataset: its cases and, for shared data, where it came from and its checksums.

    Only ``cases`` is required; ``name`` defaults to the file name, the provenance fields
    to ``unknown`` (private data), ``files`` to none listed (no checksums to verify).
    """

    name: str = Field(default="dataset", pattern=r"^[a-z0-9_]+$")
    root: str | None = None
    description: str = UNKNOWN
    modality: str = UNKNOWN
    reference_standard: ReferenceStandard = ReferenceStandard.UNKNOWN
    labels: dict[int, str] = Field(default_factory=dict)
    source: Source = Field(default_factory=Source)
    licence: str = UNKNOWN
    citation: str = UNKNOWN
    deid_status: str = UNKNOWN
    cases: list[Case] = Field(min_length=1)
    files: list[ManifestFile] = Field(default_factory=list)

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
    """Read and validate a dataset manifest YAML file (``name`` defaults to the file's)."""
    manifest = load_config(path, DatasetManifest)
    if "name" not in manifest.model_fields_set:
        name = re.sub(r"[^a-z0-9_]+", "_", Path(path).stem.lower()).strip("_") or "dataset"
        manifest = manifest.model_copy(update={"name": name})
    return manifest


def manifest_root(manifest_path: str | Path, manifest: DatasetManifest | None = None) -> Path:
    """The folder a manifest's paths are relative to (absolute).

    ``root:`` from the manifest, relative to the manifest file's folder; by default that
    folder itself, or its parent for a manifest in a folder named ``data_manifests``. For a
    plain folder or an nnU-Net ``dataset.json`` (see :func:`load_cases`), the folder.
    """
    path = Path(manifest_path).resolve()
    if path.is_dir():
        return path
    if manifest is None and path.suffix.lower() in (".yaml", ".yml"):
        manifest = load_manifest(path)
    folder = path.parent
    if manifest is not None and manifest.root is not None:
        return (folder / manifest.root).resolve()
    if folder.name == "data_manifests":
        return folder.parent
    return folder


def find_manifest_problems(manifest: DatasetManifest, *, root: str | Path) -> list[str]:
    """Re-hash every listed file; return one line per missing or altered file or case path.

    A manifest that lists no ``files`` (private data, checksums unknown) is checked for
    the case paths' existence only.
    """
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
            if listed and not covered:
                problems.append(f"{rel}: case {case.id} {role} is not listed under files")
            elif not (root / rel).exists():
                problems.append(f"{root / rel}: case {case.id} {role} missing")
    return problems


def verify_manifest(path: str | Path) -> DatasetManifest:
    """Load a manifest and check every file; raise IntegrityError listing each problem."""
    manifest = load_manifest(path)
    problems = find_manifest_problems(manifest, root=manifest_root(path))
    if problems:
        raise IntegrityError(f"{len(problems)} problem(s): " + "; ".join(problems), path=path)
    return manifest
