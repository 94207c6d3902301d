"""``sam_text``: structures named in text, each sent to the segmenter that knows it.

The names are matched onto the coded vocabulary (:class:`medseg.anatomy.Vocabulary`) for the
case's modality. CT organs are located without a reference label (atlas registration,
intensity rules) and drawn by SAM from the located 3D boxes
(:func:`medseg.sam.segment_named_structures`); any other concept is segmented by the
registered segmenter its vocabulary entry names (``brain tumour`` on MR: ``channel_model``
with ``brain-tumour``; ``nuclei``: ``nuclei_model``; ``retinal vessels``: ``trained_model``
with ``retina-vessels``). A name medseg does not segment on the case's modality is refused
with :class:`~medseg.core.StructureNameError`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator, model_validator

from medseg.anatomy import (
    CT_LOCATOR,
    Atlas,
    Concept,
    LocatorConfig,
    Vocabulary,
    image_modalities,
    load_atlas,
)
from medseg.core import ConfigError, ConfigModel, StructureNameError
from medseg.models import EncoderPrecision
from medseg.sam import (
    IntensityConfig,
    IntensityMode,
    Precision,
    PropagationConfig,
    SamSegmentConfig,
    TextSegmentConfig,
    segment_named_structures,
)
from medseg.segment._base import CaseImages, MapKind, Segmentation, Segmenter, SegmenterSpec
from medseg.segment._cache import cached_sam_model
from medseg.segment._registry import build_segmenter, segmenter_spec

logger = logging.getLogger(__name__)


class TextStructure(ConfigModel):
    """One named structure.

    ``output_label`` (the value written for it) defaults to the first of
    ``reference_labels``, else the dataset label of the same name, else the structure's
    position (1 = first). ``reference_labels`` only choose the output value; scoring a
    structure the dataset holds as several labels (lungs as lobes) is ``evaluate.regions``.
    """

    text: str = Field(min_length=1)
    reference_labels: list[int] | None = Field(default=None, min_length=1)
    output_label: int | None = Field(default=None, ge=1, le=65535)


class SamTextConfig(ConfigModel):
    """Structures named in text: CT organs located and drawn by SAM, other concepts routed
    to the segmenter that knows them."""

    structures: list[TextStructure] = Field(min_length=1)
    modality: str | None = Field(
        default=None,
        description="the images' modality; null: the manifest's, else inferred "
        "(DICOM Modality, Hounsfield-like values)",
    )
    atlas: str = Field(
        default="data/ct_totalsegmentator",
        description="labelled atlas folder (relative to the repository root)",
    )
    locator: LocatorConfig = Field(default_factory=LocatorConfig)
    extend_open_ends: bool = False
    model: str = "litemedsam"
    checkpoint: str | None = None
    device: str = "auto"
    precision: EncoderPrecision = Precision.BF16
    intensity: IntensityConfig = IntensityConfig(mode=IntensityMode.CT)
    propagation: PropagationConfig = PropagationConfig()

    @field_validator("structures", mode="before")
    @classmethod
    def _texts_are_structures(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"text": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _names_are_known(self) -> SamTextConfig:
        Vocabulary().match_all([s.text for s in self.structures])  # StructureNameError
        return self

    def concepts(self) -> list[Concept]:
        """The concepts named, in order (modality not checked)."""
        return [Vocabulary().match(s.text) for s in self.structures]


@dataclass(frozen=True)
class TextResult:
    """A ``sam_text`` result with what a sidecar needs.

    Attributes
    ----------
    segmentation
        Labels on the image grid and their names.
    entries
        One JSON-ready entry per label: ``label``, name, SNOMED CT codes, and for located
        structures the boxes (voxel indices) and whether it was found.
    segmenter
        The segmenter that drew it (``sam_text`` or the routed one).
    """

    segmentation: Segmentation
    entries: list[dict[str, object]]
    segmenter: str


@functools.lru_cache(maxsize=2)
def _cached_atlas(folder: str) -> Atlas:
    return load_atlas(folder)


def output_labels(
    config: SamTextConfig, concepts: list[Concept], labels: Mapping[int, str]
) -> list[int]:
    """The value written for each structure (see :class:`TextStructure`)."""
    by_name = {name: label_id for label_id, name in labels.items()}
    values = []
    for position, (structure, concept) in enumerate(
        zip(config.structures, concepts, strict=True), start=1
    ):
        if structure.output_label is not None:
            values.append(structure.output_label)
        elif structure.reference_labels:
            values.append(structure.reference_labels[0])
        else:
            values.append(by_name.get(concept.key, position))
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(
            f"sam_text structures share output labels {repeated}; give each an output_label"
        )
    return values


class SamTextSegmenter(Segmenter):
    """The ``sam_text`` method."""

    def __init__(self, config: SamTextConfig) -> None:
        self.config = config

    def _concepts_for(self, case: CaseImages) -> list[Concept]:
        stated = self.config.modality or case.modality
        modalities = image_modalities(case.image.array, case.image.metadata, stated=stated)
        if modalities is None and self.config.intensity.mode is IntensityMode.CT:
            modalities = ("CT",)  # the config says the image is in HU
        if modalities is None:
            raise StructureNameError(
                "cannot tell this image's modality (none stated, no DICOM Modality, not "
                "Hounsfield-like); state it (sam_text.modality, medseg sam --modality)",
                text=", ".join(s.text for s in self.config.structures),
                candidates=(),
            )
        return Vocabulary().match_all([s.text for s in self.config.structures], modality=modalities)

    def segment(self, case: CaseImages) -> Segmentation:
        return self.segment_with_details(case).segmentation

    def segment_with_details(self, case: CaseImages) -> TextResult:
        """Segment ``case`` and describe each label (for a sidecar JSON).

        Raises
        ------
        StructureNameError
            A name medseg does not segment on the case's modality, or names that need
            different segmenters in one call.
        """
        concepts = self._concepts_for(case)
        routes = {c.segmenter for c in concepts}
        if routes == {CT_LOCATOR}:
            return self._segment_located(case, concepts)
        if len(concepts) > 1:
            raise StructureNameError(
                "name one structure at a time when it is not a located CT organ: "
                + ", ".join(f"{c.display} ({c.segmenter})" for c in concepts),
                text=", ".join(s.text for s in self.config.structures),
                candidates=tuple(c.display for c in concepts),
            )
        return self._segment_routed(case, concepts[0])

    def _segment_located(self, case: CaseImages, concepts: list[Concept]) -> TextResult:
        config = self.config
        atlas_dir = Path(config.atlas)
        atlas = _cached_atlas(str(atlas_dir if atlas_dir.is_absolute() else case.root / atlas_dir))
        model = cached_sam_model(config.model, config.checkpoint, config.device)
        intensity = config.intensity
        if intensity.mode is IntensityMode.AUTO:  # the concepts are CT organs: a CT window
            intensity = intensity.model_copy(update={"mode": IntensityMode.CT})
        sam_config = SamSegmentConfig(
            model=config.model,
            checkpoint=config.checkpoint,
            device=config.device,
            precision=config.precision,
            intensity=intensity,
            propagation=config.propagation,
        )
        result = segment_named_structures(
            model,
            case.image,
            concepts,
            atlas=atlas,
            config=sam_config,
            text_config=TextSegmentConfig(
                locator=config.locator, extend_open_ends=config.extend_open_ends
            ),
        )
        values = output_labels(config, concepts, case.labels)
        positions = np.asarray(result.labels.array)
        lookup = np.zeros(len(concepts) + 1, dtype=np.uint16)
        lookup[1:] = values
        labels = result.labels.with_array(lookup[positions])
        entries = [
            {**entry, "label": value}
            for entry, value in zip(result.structures, values, strict=True)
        ]
        structures = {value: c.key for value, c in zip(values, concepts, strict=True)}
        absent: list[str] = []  # the parts, and a group concept whose parts are all absent
        for entry, concept in zip(entries, concepts, strict=True):
            parts = [str(part) for part in entry["absent"]]  # type: ignore[attr-defined]
            absent += parts
            if concept.parts and len(parts) == len(concept.parts):
                absent.append(concept.key)
        segmentation = Segmentation(
            labels=labels, kind=MapKind.SEMANTIC, structures=structures, absent=tuple(absent)
        )
        return TextResult(segmentation, entries, CT_LOCATOR)

    def _segment_routed(self, case: CaseImages, concept: Concept) -> TextResult:
        spec = segmenter_spec(concept.segmenter)
        settings: dict[str, object] = {}
        if concept.model is not None and "model" in spec.config_type.model_fields:
            settings["model"] = concept.model
        if "device" in spec.config_type.model_fields:
            settings["device"] = self.config.device
        segmenter = build_segmenter(spec.method, spec.config_type(**settings))
        if not case.labels and concept.model is not None:
            case = dataclasses.replace(case, labels=_model_labels(concept.model, case.root))
        logger.info("%s: segmented by %s (%s)", concept.display, spec.method, concept.model)
        segmentation = segmenter.segment(case)
        entry: dict[str, object] = {"label": None, **concept.to_json()}
        entry["segmenter"] = spec.method
        entry["model"] = concept.model
        entry["map"] = segmentation.kind.value
        entry["labels"] = {str(k): v for k, v in sorted(segmentation.structures.items())}
        entry["voxels"] = int((np.asarray(segmentation.labels.array) > 0).sum())
        if segmentation.kind is MapKind.INSTANCE:
            entry["instances"] = int(np.asarray(segmentation.labels.array).max(initial=0))
        return TextResult(segmentation, [entry], spec.method)

    def scored_structures(self, labels: Mapping[int, str]) -> list[str]:
        names = set(labels.values())
        concepts = self.config.concepts()
        if all(c.segmenter == CT_LOCATOR for c in concepts):
            return [c.key for c in concepts if c.key in names]
        return [labels[i] for i in sorted(labels)]

    def display_window_hu(self) -> tuple[float, float] | None:
        intensity = self.config.intensity
        return intensity.level_width_hu if intensity.mode is IntensityMode.CT else None


def _model_labels(model: str, root: Path) -> dict[int, str]:
    """The class names a shipped or trained model was trained with (background left out)."""
    from medseg.models import load_checkpoint
    from medseg.segment._checkpoint_semantic import resolve_pipeline_model

    plans = load_checkpoint(resolve_pipeline_model(model, root=root)).plans
    return {int(k): str(v) for k, v in plans.labels.items() if int(k) > 0}


SPEC = SegmenterSpec(
    method="sam_text",
    section="sam_text",
    config_type=SamTextConfig,
    build=SamTextSegmenter,  # type: ignore[arg-type]
    section_hint=" with structures",
)
