"""What every segmenter shares: its input (a case's images with geometry), its output (a
label or instance map with geometry and per-structure metadata) and the protocol itself."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from medseg.core import ConfigError, ConfigModel
from medseg.io import Volume


class MapKind(str, enum.Enum):
    """What the values of a segmentation mean."""

    SEMANTIC = "semantic"  # dataset label ids (0 background)
    INSTANCE = "instance"  # 0 background, 1..N one object each


@dataclass(frozen=True)
class CaseImages:
    """One case as a segmenter sees it: every volume on the image's grid (flips only).

    Attributes
    ----------
    case_id
        Pseudonymous case id (logs, errors, seeds).
    image
        The case's image as read (source geometry: array axes, spacing, RAS affine).
    root
        Folder that relative paths in segmenter configs start from (prompt files,
        checkpoints).
    labels
        The dataset's label ids and names.
    channels
        Additional images of the case (other MR sequences) by name.
    reference
        Reference label map, for segmenters prompted from it (simulated boxes).
    roi
        Region mask (brain mask, field of view), or None.
    modality
        The case's modality as its manifest states it (``CT``, ``MR``, ``microscopy``,
        ``fundus``), or None.
    """

    case_id: str
    image: Volume
    root: Path
    labels: Mapping[int, str] = field(default_factory=dict)
    channels: Mapping[str, Volume] = field(default_factory=dict)
    reference: Volume | None = None
    roi: Volume | None = None
    modality: str | None = None


@dataclass(frozen=True)
class Confidence:
    """How sure a segmenter is of its result, voxel by voxel, on the image's grid.

    Attributes
    ----------
    probability
        ``(*spatial, S)`` float (float16 or float32) in [0, 1]: the probability of each
        structure ``structure_ids[s]`` at each voxel (checkpoint models: the softmax of that
        class; SAM: the sigmoid of the mask decoder's logit, 0 on slices it did not segment).
    structure_ids
        The label value of each channel of ``probability``.
    source
        What the probability is (``softmax``, ``softmax_tta``, ``sam_sigmoid``).
    disagreement
        ``(*spatial)`` float in [0, 1]: with mirror test-time augmentation, the share of
        the mirrored passes whose class differs from the averaged prediction (blended over
        the sliding windows like the logits); None without TTA.
    slice_iou
        SAM: label value → {slice index k (file axis 2) → the decoder's predicted IoU}.
    stopped_early
        SAM: label value → why propagation stopped before the slice range it was given.
    boxes_ijk
        SAM: label value → the prompt's 3D box ``(i0, j0, k0, i1, j1, k1)`` in file voxel
        indices (inclusive), when the prompt had one.
    """

    probability: Volume
    structure_ids: tuple[int, ...]
    source: str
    disagreement: Volume | None = None
    slice_iou: Mapping[int, Mapping[int, float]] = field(default_factory=dict)
    stopped_early: Mapping[int, str] = field(default_factory=dict)
    boxes_ijk: Mapping[int, tuple[float, ...]] = field(default_factory=dict)

    def structure_probability(self, label_id: int) -> np.ndarray | None:
        """``(*spatial)`` float32 probability of one structure, or None if not held."""
        if label_id not in self.structure_ids:
            return None
        channel = self.structure_ids.index(label_id)
        return np.asarray(self.probability.array[..., channel], dtype=np.float32)

    def voxel_confidence(self, labels: np.ndarray) -> np.ndarray:
        """``(*spatial)`` float32 confidence in each voxel's label: the probability of the
        voxel's structure inside it, 1 − the largest structure probability elsewhere
        (background; 1 where no structure has any probability)."""
        labels = np.asarray(labels)
        probability = self.probability.array
        confidence = np.ones(labels.shape, dtype=np.float32)
        if not self.structure_ids:
            return confidence
        largest = np.asarray(probability.max(axis=-1), dtype=np.float32)
        background = labels == 0
        confidence[background] = 1.0 - largest[background]
        for channel, label_id in enumerate(self.structure_ids):
            inside = labels == label_id
            confidence[inside] = probability[..., channel][inside]
        return confidence


@dataclass(frozen=True)
class Segmentation:
    """A segmenter's result on the image's grid.

    Attributes
    ----------
    labels
        Label map (``kind`` semantic: dataset ids) or instance map (``kind`` instance:
        1..N), integer dtype, with the image's shape and affine.
    kind
        How to read ``labels``.
    structures
        Per-structure metadata: label value → structure name (empty for instance maps).
    probabilities
        Float class probabilities ``(*spatial, C)``, channel 0 background, when the
        segmenter has them (trained networks), else None.
    confidence
        Per-voxel confidence (:class:`Confidence`) when the segmenter can give one and was
        asked to, else None.
    absent
        Names of requested structures (parts, and group concepts all of whose parts are)
        judged outside the image's field of view and not drawn (located segmenters only).
    """

    labels: Volume
    kind: MapKind
    structures: Mapping[int, str] = field(default_factory=dict)
    probabilities: Volume | None = None
    confidence: Confidence | None = None
    absent: tuple[str, ...] = ()


class Segmenter(Protocol):
    """Segments one case. Built from its config section; holds no per-case state.

    A new segmenter is one module: its config (a :class:`~medseg.core.ConfigModel`), a
    class with these methods, and a :class:`SegmenterSpec` registered in
    ``medseg/segment/_builtin.py``.
    """

    def segment(self, case: CaseImages) -> Segmentation:
        """Segment ``case``; raise InputError/ConfigError naming the case on bad input."""
        ...

    def scored_structures(self, labels: Mapping[int, str]) -> list[str]:
        """Names of the dataset labels a semantic evaluation scores (default: all)."""
        return [labels[i] for i in sorted(labels)]

    def display_window_hu(self) -> tuple[float, float] | None:
        """CT (level, width) in HU for overlays; None scales by percentiles."""
        return None


@dataclass(frozen=True)
class SegmenterSpec:
    """A registered segmenter: the ``segment.method`` value that selects it, the name of its
    config section under ``segment:``, the config type and how to build it.

    ``default_settings``: the section may be left out (its defaults are used); otherwise a
    pipeline choosing the method must give the section (``section_hint`` says with what).
    """

    method: str
    section: str
    config_type: type[ConfigModel]
    build: Callable[[ConfigModel], Segmenter]
    default_settings: bool = False
    section_hint: str = ""


def label_ids_for(structures: list[str], labels: Mapping[int, str]) -> dict[str, int]:
    """Map structure names to the dataset's label ids; ConfigError naming unknown ones."""
    by_name = {name: label_id for label_id, name in labels.items()}
    unknown = [name for name in structures if name not in by_name]
    if unknown:
        raise ConfigError(f"structures not in the dataset's labels: {', '.join(unknown)}")
    return {name: by_name[name] for name in structures}
