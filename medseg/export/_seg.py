"""DICOM Segmentation (SEG) writing and reading with highdicom."""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medseg import __version__
from medseg.core import ExportError, GeometryError, InputError, atomic_output
from medseg.export._series import SourceSeries, from_frames, map_mask_to_series, to_frames
from medseg.export._structures import Structure
from medseg.io import Volume

logger = logging.getLogger(__name__)

#: Largest stored value of a FRACTIONAL segment (probability 1.0).
MAX_FRACTIONAL_VALUE = 255


class SegmentationType(str, enum.Enum):
    """DICOM SEG encodings: one bit per segment frame, one label-map frame, or 8-bit fractions."""

    BINARY = "binary"
    LABELMAP = "labelmap"
    FRACTIONAL = "fractional"


class AlgorithmType(str, enum.Enum):
    """How the segments were made (DICOM Segment Algorithm Type)."""

    AUTOMATIC = "automatic"
    SEMIAUTOMATIC = "semiautomatic"
    MANUAL = "manual"


def _segment_descriptions(
    structures: Sequence[Structure],
    *,
    algorithm_type: AlgorithmType,
    model_name: str,
    model_version: str,
) -> list[hd.seg.SegmentDescription]:
    algorithm = None
    if algorithm_type != AlgorithmType.MANUAL:
        algorithm = hd.AlgorithmIdentificationSequence(
            name=model_name,
            family=codes.cid7162.ArtificialIntelligence,
            version=model_version,
            source=f"medseg {__version__}",
        )
    descriptions = []
    for number, structure in enumerate(structures, start=1):
        description = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=structure.name[:64],
            segmented_property_category=structure.code.category_code,
            segmented_property_type=structure.code.type_code,
            algorithm_type=algorithm_type.value.upper(),
            algorithm_identification=algorithm,
            tracking_uid=generate_uid(),
            tracking_id=f"{structure.name} (label {structure.label_value})"[:64],
            display_color=hd.color.CIELabColor.from_rgb(*structure.color_rgb),
        )
        modifier = structure.code.modifier_code
        if modifier is not None:
            type_item = description.SegmentedPropertyTypeCodeSequence[0]
            type_item.SegmentedPropertyTypeModifierCodeSequence = [
                hd.sr.CodedConcept.from_code(modifier)
            ]
        descriptions.append(description)
    return descriptions


def _renumbered_frames(mask: Volume, structures: Sequence[Structure]) -> np.ndarray:
    """Label map (slice, row, column) with label values replaced by segment numbers 1..N."""
    values = mask.array
    is_integer = np.issubdtype(values.dtype, np.integer) or values.dtype == bool
    if not is_integer and not np.array_equal(values, np.round(values)):
        raise InputError(
            "a BINARY or LABELMAP SEG needs an integer label map; for probabilities "
            "use the fractional type with a 4D (column, row, slice, segment) array"
        )
    if values.dtype == bool or not is_integer:
        values = values.astype(np.int64)
    if values.size and values.min() < 0:
        raise InputError("label values must be >= 0 (0 is background)")
    present = set(np.flatnonzero(np.bincount(values.ravel())).tolist()) - {0}
    wanted = {s.label_value for s in structures}
    if present - wanted:
        raise InputError(
            f"every label value in the mask needs a structure; missing {sorted(present - wanted)}"
        )
    lookup = np.zeros(int(values.max(initial=0)) + 1, dtype=np.uint16)
    for number, structure in enumerate(structures, start=1):
        if structure.label_value < lookup.size:
            lookup[structure.label_value] = number
    renumbered = lookup[values]
    dtype = np.uint8 if len(structures) < 256 else np.uint16
    return to_frames(renumbered.astype(dtype))


def write_dicom_seg(
    mask: Volume,
    series: SourceSeries,
    structures: Sequence[Structure],
    path: str | Path,
    *,
    segmentation_type: SegmentationType = SegmentationType.BINARY,
    algorithm_type: AlgorithmType = AlgorithmType.AUTOMATIC,
    model_name: str = "medseg",
    model_version: str = __version__,
    series_number: int = 901,
    series_description: str = "medseg segmentation",
    overwrite: bool = False,
) -> Path:
    """Write ``mask`` as a DICOM SEG referencing every image of ``series``.

    One segment per structure (segment number = position in ``structures`` + 1), each with
    its name, SNOMED CT category/type (and laterality), colour and algorithm
    identification. Frames without any segment pixels are omitted. Patient and study
    attributes are copied from the source by highdicom; ReferencedSeriesSequence lists the
    source images.

    Parameters
    ----------
    mask
        A label map (3D, integer) on the series' grid up to axis order/flips, or for
        ``FRACTIONAL`` a 4D (column, row, slice, segment) array of probabilities in [0, 1]
        with one channel per structure, in ``structures`` order.
    series
        The source DICOM series.
    structures
        The structures to encode; every non-zero label value must have one.
    path
        Output ``.dcm`` path, written atomically.
    segmentation_type
        BINARY (default, widest viewer support), LABELMAP (DICOM 2024 Label Map
        Segmentation storage; one frame per slice) or FRACTIONAL (8-bit probabilities).
    model_name, model_version
        Algorithm identification of the segments.

    Raises
    ------
    GeometryError
        If the mask is not on the series' grid.
    InputError
        If the mask holds label values without a structure, or probabilities are not in
        [0, 1].
    ExportError
        If highdicom rejects the content.
    """
    if not structures:
        raise InputError("nothing to export: the mask has no structures")
    mapped = map_mask_to_series(mask, series)
    if segmentation_type == SegmentationType.FRACTIONAL and mapped.array.ndim == 4:
        if mapped.array.shape[3] != len(structures):
            raise GeometryError(
                f"a fractional mask needs one channel per structure ({len(structures)}), "
                f"not {mapped.array.shape[3]}"
            )
        probabilities = mapped.array.astype(np.float32)
        if probabilities.min(initial=0.0) < 0.0 or probabilities.max(initial=0.0) > 1.0:
            raise InputError("probabilities must lie in [0, 1]")
        pixels = to_frames(probabilities)
    elif mapped.array.ndim == 3:
        pixels = _renumbered_frames(mapped, structures)
    else:
        raise GeometryError(
            f"a {segmentation_type.value} SEG needs a 3D label map, not a "
            f"{mapped.array.ndim}D array"
        )
    descriptions = _segment_descriptions(
        structures,
        algorithm_type=algorithm_type,
        model_name=model_name,
        model_version=model_version,
    )
    try:
        seg = hd.seg.Segmentation(
            source_images=list(series.datasets),
            pixel_array=pixels,
            segmentation_type=segmentation_type.value.upper(),
            segment_descriptions=descriptions,
            series_instance_uid=generate_uid(),
            series_number=series_number,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer="medseg",
            manufacturer_model_name=model_name[:64],
            software_versions=__version__,
            device_serial_number="0",
            fractional_type="PROBABILITY",
            max_fractional_value=MAX_FRACTIONAL_VALUE,
            content_label="MEDSEG",
            content_description=series_description[:64],
            series_description=series_description[:64],
            transfer_syntax_uid=ExplicitVRLittleEndian,
            omit_empty_frames=True,
        )
    except (ValueError, TypeError) as err:
        raise ExportError(f"highdicom rejected the segmentation: {err}") from err
    n_frames = int(getattr(seg, "NumberOfFrames", 0))
    logger.info(
        "DICOM SEG (%s): %d segments, %d frames", segmentation_type.value, len(structures), n_frames
    )
    with atomic_output(path, overwrite=overwrite) as tmp:
        seg.save_as(tmp, enforce_file_format=True)
    return Path(path)


def _frame_derivation_attributes(seg: hd.seg.Segmentation) -> str:
    """Names of the attributes in the first frame's Source Image Sequence item."""
    groups = seg.get("PerFrameFunctionalGroupsSequence")
    if not groups:
        return ""
    try:
        item = groups[0].DerivationImageSequence[0].SourceImageSequence[0]
    except (AttributeError, IndexError):
        return ""
    return " ".join(item.dir())


def _frame_source_uids(seg: hd.seg.Segmentation) -> set[str]:
    """SOP Instance UIDs of the source images that the SEG's frames were derived from."""
    found = set()
    for group in seg.get("PerFrameFunctionalGroupsSequence", []):
        for derivation in group.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                found.add(str(source.ReferencedSOPInstanceUID))
    return found


def _check_frame_positions(
    seg: hd.seg.Segmentation, series: SourceSeries, *, path: Path, tolerance_mm: float = 0.01
) -> None:
    """Raise GeometryError unless every frame sits where its source image does."""
    position_of = {
        str(d.SOPInstanceUID): np.asarray([float(v) for v in d.ImagePositionPatient])
        for d in series.datasets
    }
    for group in seg.PerFrameFunctionalGroupsSequence:
        try:
            uid = str(
                group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
            )
            position = np.asarray(
                [float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient]
            )
        except (AttributeError, IndexError) as err:
            raise GeometryError(
                "SEG frames must name their source image and position", path=path
            ) from err
        if uid not in position_of:
            raise GeometryError("a SEG frame references an image outside the series", path=path)
        if float(np.max(np.abs(position - position_of[uid]))) > tolerance_mm:
            raise GeometryError(
                "a SEG frame is not at its source image's position; it is on another grid",
                path=path,
            )


def read_dicom_seg(
    path: str | Path,
    series: SourceSeries,
    *,
    label_values: dict[str, int] | None = None,
) -> tuple[Volume, dict[int, str]]:
    """Read a DICOM SEG back onto the series' grid.

    Parameters
    ----------
    path
        The SEG file.
    series
        The source series it references (frames are matched by SOP Instance UID).
    label_values
        Segment label → label value to give it in the output (e.g. the original label
        map's); segments not listed keep their segment number.

    Returns
    -------
    Volume, dict
        For BINARY/LABELMAP: a label map (column, row, slice; uint16) on the series'
        Volume grid. For FRACTIONAL: float32 probabilities (column, row, slice, segment).
        The dict maps each output value (or channel index + 1) to the segment label.
    """
    try:
        seg = hd.seg.segread(str(path))
    except Exception as err:  # pydicom/highdicom raise many kinds for a bad file
        raise InputError(f"cannot read DICOM SEG ({type(err).__name__})", path=path) from err
    numbers = list(seg.segment_numbers)
    labels = {n: str(seg.get_segment_description(n).SegmentLabel) for n in numbers}
    uids = [str(ds.SOPInstanceUID) for ds in series.datasets]
    fractional = seg.segmentation_type == hd.seg.SegmentationTypeValues.FRACTIONAL
    referenced = _frame_source_uids(seg)
    if not referenced or not referenced <= set(uids):
        raise InputError(
            f"cannot map the SEG onto the series: {len(referenced - set(uids))} of its "
            f"{len(referenced)} source images are not in this series; pass the series it "
            "was made from",
            path=path,
        )
    preserved_stated = "SpatialLocationsPreserved" in _frame_derivation_attributes(seg)
    if not preserved_stated:
        # Some writers (dcmqi) omit SpatialLocationsPreserved; check the frames' positions
        # against their source images ourselves before indexing by source instance.
        _check_frame_positions(seg, series, path=Path(path))
    try:
        frames = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=uids,
            segment_numbers=numbers,
            combine_segments=not fractional,
            assert_missing_frames_are_empty=True,
            ignore_spatial_locations=not preserved_stated,
            dtype=np.float32 if fractional else np.uint16,
        )
    except (RuntimeError, ValueError, KeyError) as err:
        raise InputError(
            f"cannot map the SEG onto the series ({err}); overlapping segments cannot be "
            "combined into one label map, and every frame must reference this series",
            path=path,
        ) from err
    if fractional:
        return series.volume.with_array(from_frames(frames)), {
            i + 1: labels[n] for i, n in enumerate(numbers)
        }
    label_map = from_frames(frames)
    names: dict[int, str] = {}
    if label_values:
        lookup = np.arange(max(numbers, default=0) + 1, dtype=np.uint16)
        for number in numbers:
            value = label_values.get(labels[number], number)
            lookup[number] = value
            names[int(value)] = labels[number]
        label_map = lookup[label_map]
    else:
        names = dict(labels)
    return series.volume.with_array(label_map), names
