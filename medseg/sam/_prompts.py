"""Prompt files: a radiologist's boxes and clicks per case, validated, in voxel or world mm.

A prompt file is JSON::

    {
      "version": 1,
      "coordinates": "voxel",            # or "ras_mm" / "lps_mm"
      "cases": [
        {"case_id": "spleen_02",
         "objects": [
           {"label": 1, "name": "spleen", "box": [40, 60, 5, 95, 120, 20]},
           {"label": 2, "slice": 12, "points": [[80, 70, 1], [60, 90, 0]], "propagate": true}
         ]}
      ]
    }

Voxel coordinates index the image file's array axes ``(i, j, k)`` (DICOM: column, row,
slice; 2D images: x = column, y = row, and ``slice`` may be left out). A 6-value box
``[i0, j0, k0, i1, j1, k1]`` spanning several slices is propagated through them from its
middle slice; a box or points on one slice are segmented on that slice only unless
``propagate`` is true. World coordinates (``ras_mm``: nibabel/NIfTI world; ``lps_mm``: DICOM
patient coordinates, as viewers report them) always have three values per point and six per
box, and are mapped through the image's affine; an oblique box becomes the voxel box holding
its two corners.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from medseg.core import ConfigError, ConfigModel, InputError, parse_config
from medseg.io import Volume


class CoordinateSpace(str, enum.Enum):
    """Coordinate system of the numbers in a prompt file."""

    VOXEL = "voxel"
    RAS_MM = "ras_mm"
    LPS_MM = "lps_mm"


class ObjectPromptSpec(ConfigModel):
    """One object to segment, as written in a prompt file."""

    label: int = Field(default=1, ge=1, le=65535)
    name: str | None = None
    slice: int | None = Field(default=None, ge=0)
    box: list[float] | None = None
    points: list[list[float]] = Field(default_factory=list)
    propagate: bool = False
    first_slice: int | None = Field(default=None, ge=0)
    last_slice: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _check(self) -> ObjectPromptSpec:
        if self.box is None and not self.points:
            raise ValueError("an object needs a box or points")
        numbers = [*(self.box or []), *(v for p in self.points for v in p)]
        if not all(np.isfinite(numbers)):
            raise ValueError("box and point coordinates must be finite numbers (no NaN or inf)")
        if self.box is not None and len(self.box) not in (4, 6):
            raise ValueError(
                f"box must have 4 values [x0, y0, x1, y1] or 6 [x0, y0, z0, x1, y1, z1], "
                f"not {len(self.box)}"
            )
        for number, point in enumerate(self.points):
            if len(point) not in (3, 4):
                raise ValueError(
                    f"point {number} must be [x, y, label] or [x, y, z, label], not {point}"
                )
            if point[-1] not in (0, 1):
                raise ValueError(
                    f"point {number} label must be 1 (foreground) or 0 (background), "
                    f"not {point[-1]}"
                )
        if len({len(p) for p in self.points}) > 1:
            raise ValueError("all points of an object must have the same number of values")
        if (
            self.first_slice is not None
            and self.last_slice is not None
            and self.first_slice > self.last_slice
        ):
            raise ValueError("first_slice must not be after last_slice")
        return self


class CasePrompts(ConfigModel):
    """The objects of one case."""

    case_id: str = Field(min_length=1)
    objects: list[ObjectPromptSpec] = Field(min_length=1)


class PromptFile(ConfigModel):
    """A whole prompt file (see the module docstring for the layout)."""

    version: Literal[1] = 1
    coordinates: CoordinateSpace = CoordinateSpace.VOXEL
    cases: list[CasePrompts] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> PromptFile:
        ids = [c.case_id for c in self.cases]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"case_id {duplicates[0]!r} appears more than once")
        if self.coordinates is not CoordinateSpace.VOXEL:
            for case in self.cases:
                for obj in case.objects:
                    if obj.box is not None and len(obj.box) != 6:
                        raise ValueError(
                            f"case {case.case_id!r}: world-mm boxes need 6 values "
                            "[x0, y0, z0, x1, y1, z1]"
                        )
                    if obj.points and len(obj.points[0]) != 4:
                        raise ValueError(
                            f"case {case.case_id!r}: world-mm points need [x, y, z, label]"
                        )
                    if any(v is not None for v in (obj.slice, obj.first_slice, obj.last_slice)):
                        raise ValueError(
                            f"case {case.case_id!r}: slice, first_slice and last_slice are "
                            "voxel indices; use coordinates 'voxel' or give z in mm"
                        )
        return self

    def case(self, case_id: str | None) -> CasePrompts:
        """The prompts of ``case_id``; ``None`` is allowed when the file holds one case."""
        if case_id is None:
            if len(self.cases) != 1:
                raise ConfigError(
                    f"the prompt file holds {len(self.cases)} cases; choose one with --case "
                    f"({', '.join(c.case_id for c in self.cases)})"
                )
            return self.cases[0]
        for case in self.cases:
            if case.case_id == case_id:
                return case
        raise ConfigError(
            f"case {case_id!r} is not in the prompt file; it holds "
            f"{', '.join(c.case_id for c in self.cases)}"
        )


def load_prompt_file(path: str | Path) -> PromptFile:
    """Read and validate a JSON prompt file.

    Raises
    ------
    ConfigError
        Naming the file and, for JSON syntax errors, the line and column; for content
        errors, the dotted path of the bad entry (``cases.0.objects.1.box``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError("prompt file not found", path=path) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read prompt file ({type(err).__name__})", path=path) from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"prompt file is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}",
            path=path,
        ) from err
    if not isinstance(data, dict):
        raise ConfigError(
            f"prompt file must hold a JSON object, not a {type(data).__name__}", path=path
        )
    return parse_config(PromptFile, data, source=path)


@dataclass(frozen=True)
class ObjectPrompt:
    """One object's prompt resolved to voxel indices of the image file's array axes.

    Attributes
    ----------
    label
        Value the object gets in the output label map.
    box_ijk
        ``(i0, j0, k0, i1, j1, k1)`` inclusive voxel box, or None.
    points_ijk
        ``((i, j, k), ...)`` voxel coordinates of clicks.
    point_labels
        1 foreground, 0 background, one per point.
    propagate
        Carry a one-slice prompt to the neighbouring slices (a box spanning several slices
        always propagates through them).
    first_slice, last_slice
        Optional inclusive bounds of the propagation along k.
    region_ijk
        Optional bool mask on the file's grid ``(i, j, k)``: the only voxels the object may
        take. Its SAM mask is cut to them before overlaps between objects are settled.
    min_voxels
        When propagation draws fewer voxels than this, the object is drawn again with each
        previous slice's mask as a further prompt, and the larger mask is kept (SAM lost
        the object on its way through the slices); 0: never.
    """

    label: int = 1
    box_ijk: tuple[float, float, float, float, float, float] | None = None
    points_ijk: tuple[tuple[float, float, float], ...] = ()
    point_labels: tuple[int, ...] = ()
    propagate: bool = False
    first_slice: int | None = None
    last_slice: int | None = None
    region_ijk: np.ndarray | None = field(default=None, compare=False, repr=False)
    min_voxels: int = 0


def _world_to_voxel(points_mm: np.ndarray, affine: np.ndarray) -> np.ndarray:
    homogeneous = np.c_[points_mm, np.ones(len(points_mm))]
    return (np.linalg.inv(affine) @ homogeneous.T).T[:, :3]


def _inside(ijk: np.ndarray | tuple[float, ...], shape: tuple[int, ...]) -> bool:
    return all(0 <= v <= n - 1 for v, n in zip(ijk, shape, strict=True))


def _check_voxel_prompt(
    spec: ObjectPromptSpec,
    box: tuple[float, ...] | None,
    points: list[tuple[float, float, float]],
    shape: tuple[int, ...],
    *,
    where: str,
) -> None:
    """Voxel prompts are whole indices inside the image; messages quote what was given."""
    given_numbers = [*(spec.box or []), *(v for p in spec.points for v in p[:-1])]
    if any(not float(v).is_integer() for v in given_numbers):
        raise InputError(f"{where}: voxel coordinates must be whole indices, not {given_numbers}")
    limits = "x 0..{}, y 0..{}, z 0..{}".format(*(n - 1 for n in shape))
    if box is not None and not (_inside(box[:3], shape) and _inside(box[3:], shape)):
        raise InputError(f"{where}: the box {spec.box} reaches outside the image ({limits})")
    for given, point in zip(spec.points, points, strict=True):
        if not _inside(point, shape):
            raise InputError(
                f"{where}: the point {given[:-1]} lies outside the image ({limits})"
                + ("" if len(given) == 4 else f" on slice {int(point[2])}")
            )


def resolve_object_prompts(
    prompt_file: PromptFile, volume: Volume, *, case_id: str | None = None
) -> list[ObjectPrompt]:
    """The objects of one case as :class:`ObjectPrompt` in voxel indices of ``volume``.

    Raises
    ------
    InputError
        If a prompt needs a slice index the image does not make implicit (3D image, box or
        points without a slice).
    """
    case = prompt_file.case(case_id)
    shape = volume.spatial_shape
    if len(shape) != 3:
        raise InputError(f"prompts need an image with 3 spatial axes (i, j, k), not {shape}")
    n_slices = shape[2]
    space = prompt_file.coordinates
    objects = []
    for number, spec in enumerate(case.objects):
        where = f"case {case.case_id!r} object {number}"
        box: tuple[float, ...] | None = None
        points: list[tuple[float, float, float]] = []
        labels = tuple(int(p[-1]) for p in spec.points)
        if space is CoordinateSpace.VOXEL:
            slice_index = spec.slice
            if slice_index is None and n_slices == 1:
                slice_index = 0
            needs_slice = (spec.box is not None and len(spec.box) == 4) or (
                spec.points and len(spec.points[0]) == 3
            )
            if needs_slice and slice_index is None:
                raise InputError(
                    f"{where}: the image has {n_slices} slices; give 'slice' or use 6-value "
                    "boxes and [x, y, z, label] points"
                )
            if spec.box is not None:
                if len(spec.box) == 4:
                    x0, y0, x1, y1 = spec.box
                    box = (x0, y0, float(slice_index), x1, y1, float(slice_index))  # type: ignore[arg-type]
                else:
                    box = tuple(spec.box)
            for point in spec.points:
                if len(point) == 3:
                    points.append((point[0], point[1], float(slice_index)))  # type: ignore[arg-type]
                else:
                    points.append((point[0], point[1], point[2]))
        else:
            flip = np.array([-1.0, -1.0, 1.0]) if space is CoordinateSpace.LPS_MM else np.ones(3)
            if spec.box is not None:
                corners = np.array([spec.box[:3], spec.box[3:]], dtype=np.float64) * flip
                voxels = _world_to_voxel(corners, volume.affine)
                low, high = voxels.min(axis=0), voxels.max(axis=0)
                box = (*low.tolist(), *high.tolist())
            if spec.points:
                mm = np.array([p[:3] for p in spec.points], dtype=np.float64) * flip
                points = [tuple(v) for v in _world_to_voxel(mm, volume.affine).tolist()]  # type: ignore[misc]
        if space is CoordinateSpace.VOXEL:
            _check_voxel_prompt(spec, box, points, shape, where=where)
        if box is not None:
            low_ijk = np.array(box[:3])
            high_ijk = np.array(box[3:])
            if np.any(high_ijk < low_ijk):
                raise InputError(f"{where}: box must have x0 <= x1, y0 <= y1, z0 <= z1")
            if space is not CoordinateSpace.VOXEL and (
                np.any(high_ijk < 0) or np.any(low_ijk > np.array(shape) - 1)
            ):
                raise InputError(f"{where}: the box {spec.box} mm lies outside the image")
        for given, point in zip(spec.points, points, strict=True):
            if space is not CoordinateSpace.VOXEL and not _inside(np.rint(point), shape):
                raise InputError(f"{where}: the point {given[:3]} mm lies outside the image")
        objects.append(
            ObjectPrompt(
                label=spec.label,
                box_ijk=box,  # type: ignore[arg-type]
                points_ijk=tuple(points),
                point_labels=labels,
                propagate=spec.propagate,
                first_slice=spec.first_slice,
                last_slice=spec.last_slice,
            )
        )
    return objects
