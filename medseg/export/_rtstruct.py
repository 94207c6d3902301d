"""DICOM RT Structure Set (RTSTRUCT) writing and re-rasterising, with pydicom.

Hand-written on purpose: highdicom has no RTSTRUCT writer, and rt-utils pins old
dependencies (its install pulls the ``dataclasses`` backport, which fails on Python ≥ 3.7
wheels here) and computes contours with OpenCV at pixel corners. The module is small and
is checked the way a PACS would check it: ``dciodvfy`` finds no errors, and re-rasterising
the contours reproduces the source mask (Dice ≥ 0.95 per ROI, centroids within half a
voxel) in the tests.

Geometry: contours are traced with :func:`skimage.measure.find_contours` at level 0.5 on
each slice's binary mask, in pixel-index coordinates whose integers are pixel *centres*
(the DICOM convention for ImagePositionPatient), then mapped to patient LPS mm with
ImagePositionPatient, ImageOrientationPatient and PixelSpacing — no half-voxel shift.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
import pydicom.config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ImplicitVRLittleEndian, generate_uid
from scipy import ndimage  # type: ignore[import-untyped]
from skimage.draw import polygon as draw_polygon
from skimage.measure import approximate_polygon, find_contours

from medseg import __version__
from medseg.core import InputError, atomic_output
from medseg.export._seg import AlgorithmType
from medseg.export._series import SourceSeries, map_mask_to_series, slice_geometry_lps
from medseg.export._structures import Structure
from medseg.io import Volume

logger = logging.getLogger(__name__)

RT_STRUCTURE_SET_STORAGE = UID("1.2.840.10008.5.1.4.1.1.481.3")
_STUDY_COMPONENT_SOP_CLASS = UID("1.2.840.10008.3.1.2.3.1")  # Detached Study Management (retired)
# Attributes copied from the source so the structure set joins the patient and study.
_PATIENT_STUDY_ATTRIBUTES = (
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
)
_TYPE2: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def trace_slice_contours(mask_2d: np.ndarray) -> list[np.ndarray]:
    """Closed contours of a binary slice, as (n, 2) float arrays of (row, column) indices.

    Integer coordinates are pixel centres. Contours of holes are returned too (RTSTRUCT
    has no hole flag: viewers fill contours of one slice with the even-odd rule, which is
    what :func:`rasterise_slice_contours` does). Collinear points are dropped; contours
    with fewer than 3 distinct points are never returned.
    """
    padded = np.pad(np.asarray(mask_2d, dtype=np.float32), 1)
    contours = []
    for contour in find_contours(padded, level=0.5):
        points = approximate_polygon(contour - 1.0, tolerance=0.0)
        if len(points) > 1 and np.allclose(points[0], points[-1]):
            points = points[:-1]
        if len(np.unique(np.round(points, 4), axis=0)) >= 3:
            contours.append(points)
    return contours


def rasterise_slice_contours(contours: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Fill (row, column) polygons into a (rows, columns) bool mask, even-odd (XOR) rule.

    A pixel is inside a polygon when its centre is (:func:`skimage.draw.polygon`).
    """
    mask = np.zeros(shape, dtype=bool)
    for contour in contours:
        rows, columns = draw_polygon(contour[:, 0], contour[:, 1], shape=shape)
        region = np.zeros(shape, dtype=bool)
        region[rows, columns] = True
        mask ^= region
    return mask


def _format_ds(values: np.ndarray) -> list[str]:
    """Decimal strings of at most 16 characters (DS), to 0.001 mm (far below any pixel)."""
    if values.size and float(np.abs(values).max()) >= 1e9:
        raise InputError("contour coordinates beyond 1e9 mm: the source geometry is broken")
    return [text.rstrip("0").rstrip(".") for text in (f"{v:.3f}" for v in values.tolist())]


def _copy_patient_study(source: Dataset, target: Dataset) -> None:
    for name in _PATIENT_STUDY_ATTRIBUTES:
        if name in source:
            target[name] = source[name]
    for name in _TYPE2:
        if name not in target:
            setattr(target, name, "")


def _contour_image_item(dataset: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = dataset.SOPClassUID
    item.ReferencedSOPInstanceUID = dataset.SOPInstanceUID
    return item


def write_rtstruct(
    mask: Volume,
    series: SourceSeries,
    structures: Sequence[Structure],
    path: str | Path,
    *,
    algorithm_type: AlgorithmType = AlgorithmType.AUTOMATIC,
    model_name: str = "medseg",
    series_number: int = 902,
    structure_set_label: str = "medseg",
    overwrite: bool = False,
) -> Path:
    """Write a label map as an RTSTRUCT: one ROI per structure, closed planar contours.

    Parameters
    ----------
    mask
        Integer label map on the series' grid up to axis order/flips (no resampling).
    series
        The source DICOM series (single-frame images).
    structures
        The ROIs to write; a structure without voxels is written as an ROI without
        contours and logged.
    path
        Output ``.dcm`` path, written atomically (Implicit VR Little Endian, so long
        contours are not limited by the 64 KiB explicit-VR DS length).
    algorithm_type
        ROI Generation Algorithm (automatic, semiautomatic or manual).
    """
    mapped = map_mask_to_series(mask, series)
    if mapped.array.ndim != 3:
        raise InputError(f"an RTSTRUCT needs a 3D label map, not {mapped.array.ndim}D")
    labels = mapped.array
    first = series.datasets[0]
    now = datetime.datetime.now(tz=datetime.timezone.utc)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    _copy_patient_study(first, ds)
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = f"medseg contours ({model_name})"[:64]
    ds.OperatorsName = ""
    ds.Manufacturer = "medseg"
    ds.ManufacturerModelName = model_name[:64]
    ds.SoftwareVersions = __version__
    ds.FrameOfReferenceUID = first.FrameOfReferenceUID
    ds.PositionReferenceIndicator = ""
    ds.InstanceNumber = 1
    ds.StructureSetLabel = structure_set_label[:16]
    ds.StructureSetDate = ds.InstanceCreationDate
    ds.StructureSetTime = ds.InstanceCreationTime

    series_item = Dataset()
    series_item.SeriesInstanceUID = first.SeriesInstanceUID
    series_item.ContourImageSequence = DicomSequence(
        [_contour_image_item(d) for d in series.datasets]
    )
    study_item = Dataset()
    study_item.ReferencedSOPClassUID = _STUDY_COMPONENT_SOP_CLASS
    study_item.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study_item.RTReferencedSeriesSequence = DicomSequence([series_item])
    frame_item = Dataset()
    frame_item.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame_item.RTReferencedStudySequence = DicomSequence([study_item])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame_item])

    roi_items, contour_items, observation_items = [], [], []
    geometries = [slice_geometry_lps(d) for d in series.datasets]
    integer_labels = labels if np.issubdtype(labels.dtype, np.integer) else labels.astype(np.int64)
    boxes = ndimage.find_objects(np.clip(integer_labels, 0, None))
    n_contours = 0
    for number, structure in enumerate(structures, start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
        roi.ROIName = structure.name[:64]
        roi.ROIGenerationAlgorithm = algorithm_type.value.upper()
        roi.ROIGenerationDescription = f"{model_name} via medseg {__version__}"[:64]
        roi_items.append(roi)

        contours = []
        box = boxes[structure.label_value - 1] if structure.label_value <= len(boxes) else None
        if box is not None:
            voxels = labels[box] == structure.label_value
            c0, r0, k0 = (axis.start for axis in box)
            for dk in np.flatnonzero(voxels.any(axis=(0, 1))):
                k = k0 + int(dk)
                origin, row_step, column_step = geometries[k]
                # (column, row) slice → (row, column) image, as find_contours expects; the
                # bounding-box offset brings indices back to the full image.
                for points in trace_slice_contours(voxels[:, :, dk].T):
                    rows_idx = points[:, :1] + r0
                    columns_idx = points[:, 1:2] + c0
                    lps = origin + rows_idx * row_step + columns_idx * column_step
                    item = Dataset()
                    item.ContourImageSequence = DicomSequence(
                        [_contour_image_item(series.datasets[k])]
                    )
                    item.ContourGeometricType = "CLOSED_PLANAR"
                    item.NumberOfContourPoints = len(lps)
                    with pydicom.config.disable_value_validation():  # _format_ds is valid DS
                        item.ContourData = _format_ds(lps.ravel())
                    contours.append(item)
        if not contours:
            logger.warning("ROI %s has no voxels; written without contours", structure.name)
        n_contours += len(contours)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = number
        roi_contour.ROIDisplayColor = list(structure.color_rgb)
        if contours:
            roi_contour.ContourSequence = DicomSequence(contours)
        contour_items.append(roi_contour)

        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        # ORGAN for normal anatomy; other structures (lesions, cells) have no RT planning
        # type (GTV/CTV are clinical decisions), so the type-2 attribute stays empty.
        anatomical = structure.code.category in ("AnatomicalStructure", "Tissue")
        observation.RTROIInterpretedType = "ORGAN" if anatomical else ""
        observation.ROIInterpreter = ""
        code = Dataset()
        code.CodeValue = structure.code.type_code.value
        code.CodingSchemeDesignator = structure.code.type_code.scheme_designator
        code.CodeMeaning = structure.code.type_code.meaning
        observation.RTROIIdentificationCodeSequence = DicomSequence([code])
        observation_items.append(observation)
    ds.StructureSetROISequence = DicomSequence(roi_items)
    ds.ROIContourSequence = DicomSequence(contour_items)
    ds.RTROIObservationsSequence = DicomSequence(observation_items)
    ds.ApprovalStatus = "UNAPPROVED"
    logger.info("RTSTRUCT: %d ROIs, %d contours", len(structures), n_contours)
    with atomic_output(path, overwrite=overwrite) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return Path(path)


def _slice_of_points(points: np.ndarray, series: SourceSeries, *, path: Path) -> int:
    """Index of the slice whose plane holds ``points`` (within a tenth of the slice gap)."""
    origins = np.stack([slice_geometry_lps(d)[0] for d in series.datasets])
    _, row_step, column_step = slice_geometry_lps(series.datasets[0])
    normal = np.cross(column_step, row_step)
    normal /= np.linalg.norm(normal)
    distances = np.abs((points.mean(axis=0) - origins) @ normal)
    k = int(np.argmin(distances))
    gap = float(series.volume.spacing_mm[2])
    if distances[k] > 0.1 * gap:
        raise InputError("a contour lies between the series' slices", path=path)
    return k


def read_rtstruct(path: str | Path, series: SourceSeries) -> tuple[Volume, dict[int, str]]:
    """Re-rasterise an RTSTRUCT's contours onto the series' grid.

    Contour points (LPS mm) are mapped back to (row, column) indices of the slice they
    reference and filled with :func:`rasterise_slice_contours` (even-odd per slice).

    Returns
    -------
    Volume, dict
        One bool mask per ROI stacked on the last axis (column, row, slice, roi) on the
        series' Volume grid, and channel index + 1 → ROI name.
    """
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as err:
        raise InputError(f"cannot read RTSTRUCT ({type(err).__name__})", path=path) from err
    if ds.get("SOPClassUID") != RT_STRUCTURE_SET_STORAGE:
        raise InputError("file is not an RT Structure Set", path=path)
    index_of = {str(d.SOPInstanceUID): k for k, d in enumerate(series.datasets)}
    columns, rows, n_slices = series.volume.spatial_shape
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    order = sorted(names)
    masks = np.zeros((columns, rows, n_slices, len(order)), dtype=bool)
    for roi_contour in ds.ROIContourSequence:
        channel = order.index(int(roi_contour.ReferencedROINumber))
        per_slice: dict[int, list[np.ndarray]] = {}
        for item in roi_contour.get("ContourSequence", []):
            points = np.asarray([float(v) for v in item.ContourData]).reshape(-1, 3)
            if item.get("ContourGeometricType", "CLOSED_PLANAR") != "CLOSED_PLANAR":
                continue  # points and open polylines enclose no voxels
            if item.get("ContourImageSequence"):
                uid = str(item.ContourImageSequence[0].ReferencedSOPInstanceUID)
                if uid not in index_of:
                    raise InputError("a contour references an image outside the series", path=path)
                k = index_of[uid]
            else:  # Contour Image Sequence is optional: find the slice by its plane
                k = _slice_of_points(points, series, path=Path(path))
            origin, row_step, column_step = slice_geometry_lps(series.datasets[k])
            points = points - origin
            # Solve points = r * row_step + c * column_step (least squares; in-plane).
            basis = np.stack([row_step, column_step], axis=1)
            indices, *_ = np.linalg.lstsq(basis, points.T, rcond=None)
            per_slice.setdefault(k, []).append(indices.T)
        for k, contours in per_slice.items():
            masks[:, :, k, channel] = rasterise_slice_contours(contours, (rows, columns)).T
    return series.volume.with_array(masks), {i + 1: names[n] for i, n in enumerate(order)}
