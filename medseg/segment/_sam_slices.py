"""``sam_reference_box``: LiteMedSAM prompted with one reference-derived box per structure on
each 2D slice (the MedSAM evaluation protocol)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import Field

from medseg.core import ConfigModel, InputError
from medseg.io import Volume, axis_codes, reorient
from medseg.models import EncoderPrecision
from medseg.sam import (
    Precision,
    box_from_mask,
    embed_image,
    logits_to_probability,
    predict_box_logits,
)
from medseg.segment._base import (
    CaseImages,
    Confidence,
    MapKind,
    Segmentation,
    Segmenter,
    SegmenterSpec,
    label_ids_for,
)
from medseg.segment._cache import cached_sam_model
from medseg.segment._display import DISPLAY_CODES, display_image, display_slices
from medseg.transforms import CTWindow, from_display_slice, to_display_slice


class SamBoxConfig(ConfigModel):
    """LiteMedSAM prompted with a box from the reference label on each 2D slice."""

    model: str = "litemedsam"
    checkpoint: str | None = None
    device: str = "auto"
    precision: EncoderPrecision = Precision.BF16
    window: CTWindow | None = Field(
        default=None,
        description="CT window; null scales MR/microscopy by percentiles and passes RGB through",
    )
    box_margin_px: int = Field(default=5, ge=0, le=100)
    structures: list[str] = Field(default_factory=list, min_length=1)


def segment_with_reference_boxes(
    image: Volume, reference: Volume, *, structure_ids: dict[str, int], config: SamBoxConfig
) -> Volume:
    """LiteMedSAM with one reference-derived box per structure and slice (MedSAM protocol).

    Each slice is encoded once and prompted once per structure present on it. Returns a
    label map (uint8/uint16 ids of ``structure_ids``) on ``image``'s grid; where prompted
    structures overlap, the later one wins.
    """
    return _segment_with_reference_boxes(
        image, reference, structure_ids=structure_ids, config=config
    )[0]


def _segment_with_reference_boxes(
    image: Volume, reference: Volume, *, structure_ids: dict[str, int], config: SamBoxConfig
) -> tuple[Volume, Confidence]:
    """The label map and each structure's sigmoid probability (0 on unprompted slices)."""
    model = cached_sam_model(config.model, config.checkpoint, config.device)
    image_lps, n_slices = display_slices(image)
    reference_lps = reorient(reference, DISPLAY_CODES).array
    window = config.window.level_width_hu if config.window is not None else None
    dtype = np.uint8 if max(structure_ids.values(), default=0) < 256 else np.uint16
    prediction_lps = np.zeros(image_lps.spatial_shape, dtype=dtype)
    ids = list(structure_ids.values())
    probability_lps = np.zeros((*image_lps.spatial_shape[:3], len(ids)), dtype=np.float16)
    for k in range(n_slices):
        plane = reference_lps[:, :, k]
        present = [label_id for label_id in structure_ids.values() if (plane == label_id).any()]
        if not present:
            continue
        embedding = embed_image(
            model, display_image(image_lps, k, window=window), precision=config.precision
        )
        for label_id in present:
            box = box_from_mask(to_display_slice(plane == label_id), margin_px=config.box_margin_px)
            logits = from_display_slice(predict_box_logits(model, embedding, box))
            prediction_lps[:, :, k][logits > 0.0] = label_id
            probability_lps[:, :, k, ids.index(label_id)] = logits_to_probability(logits)
    prediction = image_lps.with_array(prediction_lps)
    codes = axis_codes(image)
    probability = reorient(image_lps.with_array(probability_lps), codes)
    confidence = Confidence(
        probability=probability.with_array(np.ascontiguousarray(probability.array)),
        structure_ids=tuple(ids),
        source="sam_sigmoid",
    )
    return reorient(prediction, codes), confidence


class SamSlicesSegmenter(Segmenter):
    """The ``sam_reference_box`` method (needs the case's reference label)."""

    def __init__(self, config: SamBoxConfig) -> None:
        self.config = config

    def segment(self, case: CaseImages) -> Segmentation:
        if case.reference is None:
            raise InputError(
                "sam_reference_box needs a reference label for its prompts", case_id=case.case_id
            )
        structure_ids = label_ids_for(self.config.structures, case.labels)
        labels, confidence = _segment_with_reference_boxes(
            case.image, case.reference, structure_ids=structure_ids, config=self.config
        )
        structures = {label_id: name for name, label_id in structure_ids.items()}
        return Segmentation(
            labels=labels, kind=MapKind.SEMANTIC, structures=structures, confidence=confidence
        )

    def scored_structures(self, labels: Mapping[int, str]) -> list[str]:
        return list(self.config.structures)

    def display_window_hu(self) -> tuple[float, float] | None:
        return self.config.window.level_width_hu if self.config.window is not None else None


SPEC = SegmenterSpec(
    method="sam_reference_box",
    section="sam",
    config_type=SamBoxConfig,
    build=SamSlicesSegmenter,  # type: ignore[arg-type]
    section_hint=" with structures",
)
