"""``sam_box_3d``: SAM propagated through a volume from one 3D box per structure, optionally
split into brain-tumour sub-regions by intensity rules."""

from __future__ import annotations

import enum
import logging
import zlib
from collections.abc import Mapping

import numpy as np
from pydantic import Field, field_validator, model_validator

from medseg.core import ConfigError, ConfigModel, InputError
from medseg.inference import TumourSubregionConfig, split_tumour_subregions
from medseg.io import Volume
from medseg.models import EncoderPrecision
from medseg.sam import (
    IntensityConfig,
    IntensityMode,
    ObjectPrompt,
    Precision,
    PropagationConfig,
    SamSegmentConfig,
    load_prompt_file,
    resolve_object_prompts,
    segment_prompts_with_confidence,
)
from medseg.segment._base import (
    CaseImages,
    Confidence,
    MapKind,
    Segmentation,
    Segmenter,
    SegmenterSpec,
)
from medseg.segment._cache import cached_sam_model

logger = logging.getLogger(__name__)

#: Output labels of the sub-region split (BraTS 2015).
SUBREGION_NAMES = {1: "necrotic_core", 2: "oedema", 4: "enhancing_tumour"}


class PromptSource(str, enum.Enum):
    """Where the 3D boxes of ``sam_box_3d`` come from.

    ``reference``: a simulated radiologist's box: the bounding box of the reference label,
    each in-plane side moved by a seeded random amount up to ``box_jitter_fraction`` of the
    box size (the slice range kept exact), as ``benchmarks/sam_accuracy.py`` does.
    ``file``: boxes or clicks from a prompt file (``medseg sam --prompts`` format), found
    by case id.
    """

    REFERENCE = "reference"
    FILE = "file"


class PromptedStructure(ConfigModel):
    """One structure segmented from one 3D box.

    ``reference_labels`` default to the dataset label called ``name``; ``output_label``
    (the value written in the prediction) defaults to the first reference label.
    """

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    reference_labels: list[int] | None = Field(default=None, min_length=1)
    output_label: int | None = Field(default=None, ge=1, le=65535)


class SamBox3DConfig(ConfigModel):
    """SAM (LiteMedSAM by default) propagated through a volume from one 3D box per structure,
    optionally split into brain-tumour sub-regions by intensity rules."""

    model: str = "litemedsam"
    checkpoint: str | None = None
    device: str = "auto"
    precision: EncoderPrecision = Precision.BF16
    intensity: IntensityConfig = IntensityConfig()
    propagation: PropagationConfig = PropagationConfig()
    image_channel: str | None = Field(
        default=None,
        description="segment this one of the case's additional_images; null: the main image",
    )
    structures: list[PromptedStructure] = Field(min_length=1)
    prompts: PromptSource = PromptSource.REFERENCE
    prompt_file: str | None = Field(
        default=None, description="JSON prompt file (relative to the repository root)"
    )
    box_jitter_fraction: float = Field(default=0.05, ge=0.0, le=0.5)
    seed: int = Field(default=0, ge=0)
    max_cached_slices: int = Field(default=32, ge=1)
    subregions: TumourSubregionConfig | None = None

    @field_validator("structures", mode="before")
    @classmethod
    def _names_are_structures(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _file_prompts_need_a_file(self) -> SamBox3DConfig:
        if self.prompts is PromptSource.FILE and self.prompt_file is None:
            raise ValueError("prompts 'file' needs prompt_file")
        names = [s.name for s in self.structures]
        if len(set(names)) != len(names):
            raise ValueError("structure names must be unique")
        return self


def _structure_label_ids(
    config: SamBox3DConfig, labels: Mapping[int, str]
) -> dict[str, tuple[list[int], int]]:
    """Structure name → (reference label ids, output label)."""
    known = {name: label_id for label_id, name in labels.items()}
    resolved = {}
    for structure in config.structures:
        ids = structure.reference_labels
        if ids is None:
            if structure.name not in known:
                raise ConfigError(
                    f"structure {structure.name!r} is not a dataset label; give its "
                    "reference_labels"
                )
            ids = [known[structure.name]]
        resolved[structure.name] = (ids, structure.output_label or ids[0])
    return resolved


def simulate_box_prompts(
    reference: Volume,
    structures: dict[str, tuple[list[int], int]],
    *,
    jitter_fraction: float,
    rng: np.random.Generator,
) -> list[ObjectPrompt]:
    """A simulated radiologist's 3D box per structure present in ``reference``.

    The box is the reference's bounding box in file voxel indices; each in-plane side (i, j)
    moves by a uniform random amount up to ``jitter_fraction`` of the box size along that
    axis, clipped to the image; the slice range (k) is kept exact.
    """
    array = np.asarray(reference.array)
    shape = array.shape[:3]
    prompts = []
    for name, (ids, output_label) in structures.items():
        where = np.argwhere(np.isin(array, ids))
        if where.size == 0:
            logger.warning("structure %s is absent from the reference; not prompted", name)
            continue
        low, high = where.min(axis=0)[:3].astype(float), where.max(axis=0)[:3].astype(float)
        for axis in (0, 1):
            size = high[axis] - low[axis] + 1
            moved = np.clip(
                [low[axis], high[axis]] + rng.uniform(-1, 1, 2) * jitter_fraction * size,
                0,
                shape[axis] - 1,
            )
            low[axis], high[axis] = float(moved.min()), float(moved.max())
        prompts.append(
            ObjectPrompt(label=output_label, box_ijk=(*low.tolist(), *high.tolist()))  # type: ignore[arg-type]
        )
    return prompts


def segment_with_3d_boxes(case: CaseImages, config: SamBox3DConfig) -> Volume:
    """SAM propagated from one 3D box per structure, then optional tumour sub-regions.

    Boxes are simulated from the reference (:func:`simulate_box_prompts`, seeded by the
    pipeline seed and the case id) or read from the prompt file. Returns a label map on the
    image grid: each structure's output label, or with ``subregions`` the BraTS labels
    1 (core), 2 (oedema), 4 (enhancing) inside the union of the structures.
    """
    return _segment_with_3d_boxes(case, config)[0]


def segment_with_3d_boxes_confidence(
    case: CaseImages, config: SamBox3DConfig
) -> tuple[Volume, Confidence | None]:
    """:func:`segment_with_3d_boxes` and the SAM confidence of each structure (sigmoid of
    the decoder's logits, predicted IoU per slice, early propagation stops, prompt boxes);
    the confidence is None with ``subregions`` (the split labels have no SAM logits)."""
    return _segment_with_3d_boxes(case, config)


def _segment_with_3d_boxes(
    case: CaseImages, config: SamBox3DConfig
) -> tuple[Volume, Confidence | None]:
    case_id = case.case_id
    volume = case.image
    if config.image_channel is not None:
        if config.image_channel not in case.channels:
            raise ConfigError(
                f"image_channel {config.image_channel!r} is not among the case's images "
                f"({', '.join(sorted(case.channels)) or 'none'})"
            )
        volume = case.channels[config.image_channel]
    if config.prompts is PromptSource.FILE:
        prompt_file = load_prompt_file(case.root / str(config.prompt_file))
        objects = resolve_object_prompts(prompt_file, volume, case_id=case_id)
    else:
        if case.reference is None:
            raise InputError(
                "prompts 'reference' needs a reference label to simulate the boxes",
                case_id=case_id,
            )
        seed = [config.seed, zlib.crc32(case_id.encode("utf-8"))]
        objects = simulate_box_prompts(
            case.reference,
            _structure_label_ids(config, case.labels),
            jitter_fraction=config.box_jitter_fraction,
            rng=np.random.default_rng(seed),
        )
    if not objects:
        raise InputError("no structure to prompt in this case", case_id=case_id)
    model = cached_sam_model(config.model, config.checkpoint, config.device)
    sam_config = SamSegmentConfig(
        model=config.model,
        checkpoint=config.checkpoint,
        device=config.device,
        precision=config.precision,
        intensity=config.intensity,
        propagation=config.propagation,
        max_cached_slices=config.max_cached_slices,
    )
    prompted = segment_prompts_with_confidence(model, volume, objects, sam_config)
    labels = prompted.labels
    if config.subregions is None:
        confidence = Confidence(
            probability=prompted.probability,
            structure_ids=prompted.label_ids,
            source="sam_sigmoid",
            slice_iou=prompted.slice_iou,
            stopped_early=prompted.stopped_early,
            boxes_ijk={obj.label: tuple(obj.box_ijk) for obj in objects if obj.box_ijk},
        )
        return labels, confidence
    channel = config.subregions.enhancing_channel
    if channel not in case.channels:
        raise ConfigError(
            f"subregions.enhancing_channel {channel!r} is not among the case's images "
            f"({', '.join(sorted(case.channels)) or 'none'})"
        )
    result = split_tumour_subregions(
        labels.array > 0,
        case.channels[channel].array,
        spacing_mm=volume.spacing_mm[:3],
        config=config.subregions,
        brain_mask=case.roi.array > 0 if case.roi is not None else None,
        search_mask=_box_mask(objects, labels.spatial_shape),
    )
    return labels.with_array(result.labels), None


def _box_mask(objects: list[ObjectPrompt], shape: tuple[int, ...]) -> np.ndarray | None:
    """Union of the prompts' voxel boxes (inclusive, rounded outwards); None without boxes."""
    boxes = [obj.box_ijk for obj in objects if obj.box_ijk is not None]
    if not boxes:
        return None
    mask = np.zeros(shape[:3], dtype=bool)
    for box in boxes:
        low = [max(int(np.floor(v)), 0) for v in box[:3]]
        high = [min(int(np.ceil(v)), n - 1) for v, n in zip(box[3:], shape[:3], strict=True)]
        mask[low[0] : high[0] + 1, low[1] : high[1] + 1, low[2] : high[2] + 1] = True
    return mask


class SamBox3DSegmenter(Segmenter):
    """The ``sam_box_3d`` method."""

    def __init__(self, config: SamBox3DConfig) -> None:
        self.config = config

    def segment(self, case: CaseImages) -> Segmentation:
        labels, confidence = _segment_with_3d_boxes(case, self.config)
        structures = dict(SUBREGION_NAMES) if self.config.subregions is not None else {}
        if self.config.subregions is None:
            known = {name: label_id for label_id, name in case.labels.items()}
            for structure in self.config.structures:
                ids = structure.reference_labels or [known.get(structure.name, 0)]
                output = structure.output_label or ids[0]
                if output:
                    structures[output] = structure.name
        return Segmentation(
            labels=labels, kind=MapKind.SEMANTIC, structures=structures, confidence=confidence
        )

    def scored_structures(self, labels: Mapping[int, str]) -> list[str]:
        return [s.name for s in self.config.structures]

    def display_window_hu(self) -> tuple[float, float] | None:
        intensity = self.config.intensity
        return intensity.level_width_hu if intensity.mode is IntensityMode.CT else None


SPEC = SegmenterSpec(
    method="sam_box_3d",
    section="sam_3d",
    config_type=SamBox3DConfig,
    build=SamBox3DSegmenter,  # type: ignore[arg-type]
    section_hint=" with structures",
)
