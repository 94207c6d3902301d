"""Cases from what users have: a manifest YAML, a plain folder of images (and labels), or
an nnU-Net-style ``dataset.json`` — all resolved by one rule (:func:`load_cases`)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from medseg.core import CASE_ID_PATTERN, InputError
from medseg.io._image2d import IMAGE_2D_SUFFIXES
from medseg.io._itk import ITK_SUFFIXES
from medseg.io._manifest import Case, DatasetManifest, Split, load_manifest, manifest_root

_IMAGE_SUFFIXES = (".nii.gz", ".nii", *ITK_SUFFIXES, *IMAGE_2D_SUFFIXES, ".zip")
_IMAGE_FOLDERS = ("images", "imagesTr", "imagesTs")
_LABEL_FOLDERS = ("labels", "labelsTr")
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


def _image_id(path: Path) -> str | None:
    """Case id of an image file or DICOM folder (name without suffix), None if neither."""
    if path.name.startswith("."):
        return None
    if path.is_dir():
        return path.name
    name = path.name
    for suffix in sorted(_IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return None


def _checked_id(case_id: str, path: Path) -> str:
    if not re.match(CASE_ID_PATTERN, case_id):
        raise InputError(
            f"cannot use {case_id!r} as a case id (letters, digits, '_', '.', '-'; at most "
            "128); rename the file",
            path=path,
        )
    return case_id


def _listing(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        stem = _image_id(path)
        if stem is None or path.name in (*_IMAGE_FOLDERS, *_LABEL_FOLDERS):
            continue
        if stem in found:
            raise InputError(f"two images named {stem!r}; keep one per case", path=path)
        found[stem] = path
    return found


def _group_channels(
    images: dict[str, Path], channel_names: Mapping[str, str]
) -> dict[str, dict[str, Path]]:
    """``case_0000``/``case_0001`` (nnU-Net) → {case: {channel: path}}; else one each."""
    matches = {stem: _CHANNEL.match(stem) for stem in images}
    if not images or not all(matches.values()):
        return {stem: {"0000": path} for stem, path in images.items()}
    grouped: dict[str, dict[str, Path]] = {}
    for stem, match in matches.items():
        if match is None:  # pragma: no cover - excluded above
            continue
        grouped.setdefault(match["case"], {})[match["channel"]] = images[stem]
    return grouped


def _cases_from_folders(
    root: Path,
    image_folder: Path,
    label_folder: Path | None,
    *,
    channel_names: Mapping[str, str],
    split: Split,
) -> list[Case]:
    images = _group_channels(_listing(image_folder), channel_names)
    labels = _listing(label_folder) if label_folder is not None else {}
    unmatched = sorted(set(labels) - set(images))
    if unmatched:
        raise InputError(
            f"label {unmatched[0]!r} has no image of that case id in {image_folder.name}/",
            path=labels[unmatched[0]],
        )
    cases = []
    for case_id in sorted(images):
        channels = images[case_id]
        first = min(channels)
        extra = {
            channel_names.get(str(int(ch)), f"channel_{int(ch)}"): path.relative_to(root).as_posix()
            for ch, path in sorted(channels.items())
            if ch != first
        }
        label = labels.get(case_id)
        cases.append(
            Case(
                id=_checked_id(case_id, channels[first]),
                image=channels[first].relative_to(root).as_posix(),
                label=label.relative_to(root).as_posix() if label is not None else None,
                additional_images=extra,
                split=split,
            )
        )
    return cases


def _safe_name(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "dataset"


def _folder_manifest(folder: Path) -> DatasetManifest:
    image_folder = next((folder / n for n in _IMAGE_FOLDERS if (folder / n).is_dir()), folder)
    label_folder = next((folder / n for n in _LABEL_FOLDERS if (folder / n).is_dir()), None)
    cases = _cases_from_folders(
        folder, image_folder, label_folder, channel_names={}, split=Split.TEST
    )
    if not cases:
        raise InputError(
            "folder holds no images (.nii.gz, .nii, .nrrd, .mha, .png, .tif, DICOM folders); "
            "put them in it or in images/, with labels of the same names in labels/",
            path=folder,
        )
    return DatasetManifest(name=_safe_name(folder.name), cases=cases)


def _nnunet_labels(raw: object, *, path: Path) -> dict[int, str]:
    """v2 ``{"background": 0, "liver": 1}`` or v1/MSD ``{"0": "background", "1": "liver"}``."""
    if not isinstance(raw, Mapping):
        return {}
    labels: dict[int, str] = {}
    for key, value in raw.items():
        if isinstance(value, int) and not isinstance(value, bool):  # v2: name -> value
            labels[value] = str(key)
        elif str(key).isdigit() and isinstance(value, str):  # v1: value -> name
            labels[int(key)] = value
        elif not isinstance(value, list):  # v2 region lists are not single labels
            raise InputError(
                f"dataset.json label {key!r} is neither 'name: value' nor 'value: name'",
                path=path,
            )
    labels.pop(0, None)
    return labels


def _nnunet_manifest(path: Path) -> DatasetManifest:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read dataset.json ({type(err).__name__})", path=path) from err
    if not isinstance(document, Mapping):
        raise InputError("dataset.json must hold an object", path=path)
    folder = path.parent
    channels_raw = document.get("channel_names") or document.get("modality") or {}
    channel_names = {str(k): str(v) for k, v in dict(channels_raw).items()}
    training = document.get("training")
    cases: list[Case] = []
    if isinstance(training, list) and training:  # v1 / MSD: explicit pairs
        for entry in training:
            image = folder / str(entry.get("image", ""))
            label = entry.get("label")
            case_id = _image_id(image) or ""
            if not image.exists():
                raise InputError("dataset.json lists an image that does not exist", path=image)
            cases.append(
                Case(
                    id=_checked_id(case_id, image),
                    image=image.resolve().relative_to(folder.resolve()).as_posix(),
                    label=(folder / str(label)).resolve().relative_to(folder.resolve()).as_posix()
                    if label
                    else None,
                    split=Split.TRAIN,
                )
            )
    else:  # v2: imagesTr/<case>_<channel> and labelsTr/<case>
        for images_name, labels_name, split in (
            ("imagesTr", "labelsTr", Split.TRAIN),
            ("imagesTs", "labelsTs", Split.TEST),
        ):
            if (folder / images_name).is_dir():
                labels_folder = folder / labels_name
                cases += _cases_from_folders(
                    folder,
                    folder / images_name,
                    labels_folder if labels_folder.is_dir() else None,
                    channel_names=channel_names,
                    split=split,
                )
    if not cases:
        raise InputError("dataset.json: no training list and no images in imagesTr/", path=path)
    return DatasetManifest(
        name=_safe_name(str(document.get("name") or folder.name)),
        description=str(document.get("description") or "unknown"),
        modality=channel_names.get("0", "unknown"),
        labels=_nnunet_labels(document.get("labels"), path=path),
        licence=str(document.get("licence") or document.get("license") or "unknown"),
        citation=str(document.get("reference") or "unknown"),
        cases=cases,
    )


def load_cases(path: str | Path) -> tuple[DatasetManifest, Path]:
    """Read cases from a manifest YAML, a plain folder or an nnU-Net ``dataset.json``.

    Returns the manifest and the absolute folder its case paths are relative to (see
    :func:`medseg.io.manifest_root`: for YAML its ``root``, else the folder).

    - ``*.yaml``: a dataset manifest; only ``cases`` is required.
    - a folder with ``dataset.json``, or the ``dataset.json`` itself: nnU-Net v2
      (``imagesTr/<case>_0000.nii.gz``, ``labelsTr/<case>.nii.gz``, ``labels`` as
      ``name: value``) or v1/MSD (a ``training`` list of image/label pairs).
    - any other folder: images in it (or in ``images/``), labels of the same case ids in
      ``labels/`` if present; subfolders of ``images/`` are DICOM series.

    Raises
    ------
    InputError
        Naming the path: missing, empty, unreadable, or a file name unusable as a case id.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(
            "cases not found: expected a manifest .yaml, a folder or a dataset.json", path=path
        )
    if path.is_dir():
        if (path / "dataset.json").is_file():
            return _nnunet_manifest(path / "dataset.json"), path.resolve()
        return _folder_manifest(path), path.resolve()
    if path.name.lower().endswith(".json"):
        return _nnunet_manifest(path), path.parent.resolve()
    manifest = load_manifest(path)
    return manifest, manifest_root(path, manifest)


def resolve_case_paths(case: Case, root: Path) -> Case:
    """``case`` with every path made absolute against ``root`` (absolute ones are kept)."""

    def resolve(rel: str | None) -> str | None:
        return None if rel is None else str((root / rel).absolute())

    return case.model_copy(
        update={
            "image": resolve(case.image),
            "label": resolve(case.label),
            "roi": resolve(case.roi),
            "additional_images": {k: resolve(v) for k, v in case.additional_images.items()},
        }
    )
