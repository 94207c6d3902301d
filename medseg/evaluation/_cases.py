"""Pair prediction and reference files by case id, and load them on a shared grid."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg.core import ConfigModel, GeometryError, InputError
from medseg.io import (
    DatasetManifest,
    Volume,
    collapse_grey_channels,
    label_names,
    read_image,
    read_label_sidecar,
    reorient,
    reorient_like,
)

logger = logging.getLogger(__name__)

#: File name endings recognised as images or label maps (longest first).
_SUFFIXES = (".nii.gz", ".nii", ".png", ".tif", ".tiff", ".gif", ".bmp", ".jpg", ".jpeg")


class LabelsConfig(ConfigModel):
    """A ``--labels`` file: ``labels: {1: liver, 2: spleen}`` (label value → name)."""

    labels: dict[int, str]


@dataclass(frozen=True)
class CasePair:
    """One case to evaluate: pseudonymous id, prediction, reference and optional image.

    ``relabel`` maps prediction values onto the reference's values for the same structure
    (a ``sam --text`` liver as 1 against TotalSegmentator's liver 5).
    """

    case_id: str
    prediction: Path
    reference: Path
    image: Path | None = None
    relabel: tuple[tuple[int, int], ...] = ()  # (prediction value, reference value)


@dataclass(frozen=True)
class LoadedCase:
    """Label maps of one case on one grid; 2D images have their singleton axis removed.

    Attributes
    ----------
    prediction, reference
        Integer label maps. 3D volumes are reoriented to LPS axes (i: right→left, j:
        anterior→posterior, k: inferior→superior), so that ``array[:, :, k].T`` is an axial
        slice in radiological display; metrics do not depend on axis order or flips. 2D images
        keep their file axes (column, row).
    spacing_mm
        Voxel size along those axes in mm (2D: pixel size from the file, 1.0 when unknown).
    image
        Grey image on the same grid for overlays (float32), or None.
    confidence
        Per-voxel confidence in the predicted label on the same grid (float32), or None.
    """

    case_id: str
    prediction: np.ndarray
    reference: np.ndarray
    spacing_mm: tuple[float, ...]
    image: np.ndarray | None
    confidence: np.ndarray | None = None


def case_id_of(path: Path) -> str:
    """Case id of a file: its name without a recognised image suffix."""
    name = path.name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _files_by_case(folder: Path) -> dict[str, Path]:
    files = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not (
            path.is_dir() or path.name.lower().endswith(_SUFFIXES)
        ):
            continue
        case_id = case_id_of(path)
        if case_id in files:
            raise InputError(
                f"two files for case {case_id!r}; keep one prediction/reference per case",
                path=folder,
            )
        files[case_id] = path
    if not files:
        raise InputError("folder holds no image files (.nii.gz, .nii, .png, .tif …)", path=folder)
    return files


def find_case_pairs(
    prediction: Path,
    reference: Path | None = None,
    *,
    manifest: DatasetManifest | None = None,
    manifest_root: Path | None = None,
) -> list[CasePair]:
    """Match predictions to references by case id.

    Parameters
    ----------
    prediction
        A prediction file, or a folder of files named ``<case id>.<suffix>``.
    reference
        A reference file or folder matched the same way; may be omitted with ``manifest``,
        whose cases' ``label`` paths are then the references.
    manifest, manifest_root
        Dataset manifest and the folder its paths are relative to; supplies case ids, the
        reference labels when ``reference`` is None, and images for overlays.

    Returns
    -------
    list of CasePair
        Sorted by case id.

    Raises
    ------
    InputError
        If a path is missing, a reference has no prediction, or nothing can be paired.
    """
    if not prediction.exists():
        raise InputError("prediction path not found", path=prediction)
    if reference is not None and not reference.exists():
        raise InputError("reference path not found", path=reference)
    if reference is None and manifest is None:
        raise InputError("give a reference (--ref) or a dataset manifest (--manifest)")
    root = manifest_root or Path.cwd()
    images: dict[str, Path] = {}
    references: dict[str, Path] = {}
    if manifest is not None:
        for case in manifest.cases:
            if case.label is not None:
                references[case.id] = root / case.label
                images[case.id] = root / case.image
    if reference is not None:
        if reference.is_file():
            references = {case_id_of(reference): reference}
        else:
            references = _files_by_case(reference)
    if prediction.is_file():
        if len(references) != 1 and case_id_of(prediction) not in references:
            raise InputError(
                "a single prediction file needs a single reference file or a case id found "
                "in the references",
                path=prediction,
            )
        case_id = case_id_of(prediction) if case_id_of(prediction) in references else None
        case_id = case_id or next(iter(references))
        predictions = {case_id: prediction}
    else:
        predictions = _files_by_case(prediction)
    missing = sorted(set(references) - set(predictions))
    if reference is None:  # manifest mode: evaluate the cases that have a prediction
        references = {k: v for k, v in references.items() if k in predictions}
        missing = []
    if missing:
        raise InputError(
            f"{len(missing)} reference case(s) have no prediction (first: {missing[0]!r}); "
            "name predictions <case id>.<suffix> like the references",
            path=prediction,
        )
    extra = sorted(set(predictions) - set(references))
    if extra:
        logger.warning("%d prediction(s) have no reference and are ignored", len(extra))
    if not references:
        raise InputError("no prediction matches a reference case id", path=prediction)
    return [
        CasePair(
            case_id=case_id,
            prediction=predictions[case_id],
            reference=references[case_id],
            image=images.get(case_id),
        )
        for case_id in sorted(references)
    ]


def find_claimed_labels(pairs: list[CasePair]) -> dict[int, str] | None:
    """The structures the predictions claim in their label sidecars (value → name).

    Returns the union over the cases when every prediction has a sidecar
    (``<stem>.labels.json``, see :func:`medseg.io.read_label_sidecar`), else None: then
    nothing is known about what the predictions are meant to hold.

    Raises
    ------
    InputError
        If two sidecars give one label value different names (naming the second file).
    """
    claimed: dict[int, str] = {}
    for pair in pairs:
        entries = read_label_sidecar(pair.prediction)
        if entries is None:
            if claimed:
                logger.warning(
                    "case %s: prediction has no label sidecar; scoring every label found",
                    pair.case_id,
                )
            return None
        for value, name in label_names(entries).items():
            if claimed.setdefault(value, name) != name:
                raise InputError(
                    f"label {value} is {claimed[value]!r} in another prediction's sidecar "
                    f"but {name!r} here; give --labels to choose",
                    path=pair.prediction,
                )
    return claimed


def find_reference_names(pairs: list[CasePair]) -> dict[int, str]:
    """Label names from the references' sidecars (empty when they have none)."""
    names: dict[int, str] = {}
    for pair in pairs:
        entries = read_label_sidecar(pair.reference)
        if entries is not None:
            for value, name in label_names(entries).items():
                names.setdefault(value, name)
    return names


def _relabel(array: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    out = array.copy()
    for source, target in mapping.items():
        out[array == source] = target
    return out


def match_claims_to_reference(
    claimed: dict[int, str], reference_names: dict[int, str]
) -> tuple[dict[int, str], tuple[tuple[int, int], ...]]:
    """Put claimed structures onto the reference's label values by name.

    Returns the labels to score (reference value → name) and the (prediction value,
    reference value) pairs to relabel. A claimed name the reference does not know keeps its
    value. Names compare case-insensitively, ``_`` and spaces alike (``kidney_left`` ~
    ``Kidney left``).
    """

    def key(name: str) -> str:
        return " ".join(name.lower().replace("_", " ").split())

    by_name = {key(name): value for value, name in reference_names.items()}
    labels: dict[int, str] = {}
    moves: list[tuple[int, int]] = []
    for value, name in sorted(claimed.items()):
        target = by_name.get(key(name), value)
        if target != value:
            moves.append((value, target))
        labels[target] = name
    return labels, tuple(moves)


def _binary_mask(array: np.ndarray) -> np.ndarray:
    """Foreground = value ≥ half the largest value (0/1, 0/255, palette-noisy 2/254 masks)."""
    if array.ndim == 4:  # colour axis of a 2D image
        array = array.mean(axis=3)
    top = float(array.max()) if array.size else 0.0
    if top <= 0:
        return np.zeros(array.shape, np.uint8)
    return (array >= top / 2).astype(np.uint8)


def _display_orientation(volume: Volume) -> Volume:
    """3D volumes on LPS axes (radiological axial slices); 2D images unchanged."""
    if volume.array.ndim == 3 and volume.array.shape[2] > 1:
        return reorient(volume, "LPS")
    return volume


def display_slice_index(volume: Volume, k: int) -> int:
    """Index along axis 2 after :func:`load_case`'s reorientation (LPS for 3D volumes) of
    slice ``k`` of ``volume`` (taken at the slice's centre)."""
    if volume.array.ndim < 3 or volume.array.shape[2] <= 1:
        return k
    shown = _display_orientation(volume)
    centre = np.array([(volume.array.shape[0] - 1) / 2, (volume.array.shape[1] - 1) / 2, k, 1.0])
    index = np.linalg.inv(shown.affine) @ volume.affine @ centre
    return int(np.clip(np.floor(index[2] + 0.5), 0, shown.array.shape[2] - 1))


def load_case_volumes(
    case_id: str,
    prediction: Volume,
    reference: Volume,
    *,
    image: Volume | None = None,
    confidence: Volume | None = None,
    source: Path | None = None,
) -> LoadedCase:
    """A :class:`LoadedCase` from volumes in memory: ``reference``, ``image`` and
    ``confidence`` are moved onto the prediction's grid by axis order/flips only
    (GeometryError if their grids differ otherwise), then all are reoriented like
    :func:`load_case` does. ``source`` names the case's folder in error messages."""
    where = source or Path(case_id)
    reference = reorient_like(reference, prediction, what="reference")
    arrays = {}
    for name, volume in (("image", image), ("confidence", confidence)):
        if volume is None:
            arrays[name] = None
            continue
        moved = _display_orientation(reorient_like(volume, prediction, what=name))
        array = np.asarray(moved.array, dtype=np.float32)
        arrays[name] = array.mean(axis=3) if array.ndim == 4 else array
    shown_prediction = _display_orientation(prediction)
    shown_reference = _display_orientation(reference)
    pred = collapse_grey_channels(np.asarray(shown_prediction.array), what="prediction", path=where)
    ref = collapse_grey_channels(np.asarray(shown_reference.array), what="reference", path=where)
    spacing: tuple[float, ...] = shown_reference.spacing_mm
    if ref.ndim == 3 and ref.shape[2] == 1:
        ref, pred = ref[:, :, 0], pred[:, :, 0]
        spacing = spacing[:2]
        arrays = {k: (v[:, :, 0] if v is not None else None) for k, v in arrays.items()}
    return LoadedCase(
        case_id=case_id,
        prediction=pred,
        reference=ref,
        spacing_mm=tuple(spacing),
        image=arrays["image"],
        confidence=arrays["confidence"],
    )


def load_case(pair: CasePair, *, binarize: bool = False) -> LoadedCase:
    """Read a case's prediction and reference (and image) and check they share a grid.

    Parameters
    ----------
    pair
        The files of one case.
    binarize
        Read binary masks: label 1 where the value is at least half the file's largest value
        (masks stored as 0/1 or 0/255, also palette GIFs with values such as 2/254).

    Raises
    ------
    GeometryError
        If the grids differ physically (shape, spacing, origin or direction beyond
        1e-3 mm). The same grid in another axis order or with flipped axes (a DICOM series'
        LPS against dcm2niix's LAS) is matched exactly, never resampled.
    """
    reference = read_image(pair.reference)
    prediction = read_image(pair.prediction)
    try:
        prediction = reorient_like(prediction, reference, what="prediction")
    except GeometryError as err:
        raise GeometryError(err.message, path=pair.prediction, case_id=pair.case_id) from err
    reference, prediction = _display_orientation(reference), _display_orientation(prediction)
    if binarize:
        ref = _binary_mask(np.asarray(reference.array))
        pred = _binary_mask(np.asarray(prediction.array))
    else:
        ref = collapse_grey_channels(
            np.asarray(reference.array), what="reference", path=pair.reference
        )
        pred = collapse_grey_channels(
            np.asarray(prediction.array), what="prediction", path=pair.prediction
        )
        if pair.relabel:
            pred = _relabel(pred, dict(pair.relabel))
    spacing: tuple[float, ...] = reference.spacing_mm
    image = None
    if pair.image is not None and pair.image.exists():
        try:
            volume = read_image(pair.image)
            volume = _display_orientation(volume)
            volume = reorient_like(volume, reference, what="image")
            image = np.asarray(volume.array, dtype=np.float32)
            if image.ndim == 4:
                image = image.mean(axis=3)
        except GeometryError:
            logger.info("image of case %s is on another grid; overlays without it", pair.case_id)
    if ref.ndim == 3 and ref.shape[2] == 1:  # a 2D image stored as one slice
        ref, pred = ref[:, :, 0], pred[:, :, 0]
        spacing = spacing[:2]
        image = image[:, :, 0] if image is not None else None
    return LoadedCase(
        case_id=pair.case_id,
        prediction=pred,
        reference=ref,
        spacing_mm=tuple(spacing),
        image=image,
    )
