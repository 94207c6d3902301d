"""The per-case ``overlay.png`` of a pipeline run: the evaluated structures on their image.

Only what the run evaluated is outlined: for a demo that scores the liver against a
31-structure reference, the liver of the prediction and the liver of the reference, not
the 30 others. The legend names each structure; colour images stay in colour; a volume's
slice carries its direction letters (R/L, A/P).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg.export import (
    AXIAL_MARKERS,
    StructureCodeMap,
    build_structures,
    describe_structures,
    load_structure_codes,
    write_contour_overlay,
)
from medseg.io import Volume, reorient
from medseg.runner._pipeline import EvaluationKind, PipelineConfig
from medseg.segment import DISPLAY_CODES, display_image, display_slices, label_ids_for
from medseg.transforms import to_display_slice

#: Prediction and reference colours when one structure is drawn (the usual review pair).
_SINGLE_COLOURS = ("tab:red", "tab:green")


@functools.cache
def _code_map(root: Path) -> StructureCodeMap:
    path = root / "configs" / "export" / "structure_codes.yaml"
    return load_structure_codes(path if path.is_file() else None)


def evaluated_label_groups(
    config: PipelineConfig, labels: dict[int, str], prediction: np.ndarray
) -> dict[str, list[int]]:
    """Structure (or region) name → the label ids it covers, for the structures the run scores.

    Semantic runs: the segmenter's scored structures (or the configured BraTS-style regions).
    Instance and vessel runs, and datasets without label names: every foreground label,
    under the dataset's name for it (or ``foreground``).
    """
    if config.evaluate.kind is EvaluationKind.SEMANTIC:
        if config.evaluate.regions is not None:
            return dict(config.evaluate.regions)
        if labels:
            scored = config.segment.build().scored_structures(labels)
            return {name: [label_id] for name, label_id in label_ids_for(scored, labels).items()}
    values = [int(v) for v in np.unique(prediction) if v > 0]
    name = "foreground"
    if len(labels) == 1:
        name = next(iter(labels.values()))
    return {name: values or [1]}


@dataclass(frozen=True)
class CaseOverlay:
    """What :func:`write_case_overlay` draws: a (row, column[, 3]) image in [0, 1], its
    contours (name, mask, colour[, line style]), title, direction letters and aspect."""

    slice_index: int
    display: np.ndarray
    contours: list[tuple]
    title: str
    markers: tuple[str, str, str, str] | None
    aspect: float


def write_case_overlay(*, path: Path, **case: object) -> Path:
    """Write ``overlay.png`` of :func:`plan_case_overlay` (same keyword arguments)."""
    plan = plan_case_overlay(**case)  # type: ignore[arg-type]
    return write_contour_overlay(
        plan.display,
        plan.contours,
        path,
        title=plan.title,
        markers=plan.markers,
        aspect=plan.aspect,
        overwrite=True,
    )


def plan_case_overlay(
    *,
    case_id: str,
    image: Volume,
    prediction: Volume,
    reference: Volume | None,
    labels: dict[int, str],
    config: PipelineConfig,
    root: Path,
) -> CaseOverlay:
    """The key slice (most reference, else prediction, voxels of the evaluated structures)
    with the prediction solid and the reference dashed, each named in the legend."""
    groups = evaluated_label_groups(config, labels, np.asarray(prediction.array))
    image_lps, n_slices = display_slices(image)
    predicted = np.asarray(reorient(prediction, DISPLAY_CODES).array)
    referenced = (
        np.asarray(reorient(reference, DISPLAY_CODES).array) if reference is not None else None
    )
    masks = {name: np.isin(predicted, ids) for name, ids in groups.items()}
    ref_masks = (
        {name: np.isin(referenced, ids) for name, ids in groups.items()}
        if referenced is not None
        else {}
    )
    weights_from = ref_masks or masks
    weights = sum(m.sum(axis=(0, 1)) for m in weights_from.values())
    k = int(np.argmax(weights))
    window = config.segment.build().display_window_hu()
    display = display_image(image_lps, k, window=window)
    names = list(groups)
    if len(names) == 1:
        colours = {names[0]: _SINGLE_COLOURS}
    else:
        structures = build_structures(
            list(range(1, len(names) + 1)),
            names=dict(enumerate(names, start=1)),
            code_map=_code_map(root),
            warn_uncoded=False,
        )
        colours = {s.name: (tuple(c / 255 for c in s.color_rgb),) * 2 for s in structures}
    contours = []
    for name in names:
        contours.append(
            (f"{name} (prediction)", to_display_slice(masks[name][:, :, k]), colours[name][0])
        )
        if name in ref_masks:
            contours.append(
                (
                    f"{name} (reference)",
                    to_display_slice(ref_masks[name][:, :, k]),
                    colours[name][1],
                    "dashed",
                )
            )
    spacing = image_lps.spacing_mm
    title = f"{case_id}: {describe_structures(names)}"
    if n_slices > 1:
        title += f", slice {k} of {n_slices}"
    return CaseOverlay(
        slice_index=k,
        display=display,
        contours=contours,
        title=title,
        markers=AXIAL_MARKERS if n_slices > 1 else None,
        aspect=spacing[1] / spacing[0],
    )
