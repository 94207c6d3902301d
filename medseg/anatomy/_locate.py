"""Find named CT structures' 3D boxes in a new CT without a reference label.

Two routes, chosen per structure:

- **Rules** where intensities are exact: the body is the largest connected region above
  -400 HU; the lungs are the air regions (< -400 HU) enclosed by the body that overlap the
  registered atlas lung labels (bowel and stomach gas do not), split into left and right at
  the body's mid-sagittal plane.
- **Atlas registration** for the abdominal organs: a labelled atlas CT is registered to the
  target with SimpleITK (1D search of the cranio-caudal shift on body-centred images, then an
  affine registration on soft-tissue-windowed 3 mm images), and the atlas label's box is
  mapped into the target. A structure of which too little of the registered atlas label
  falls inside the target's field of view (``min_in_view``) is reported absent, not drawn.
  The label is then fitted to the target's own organ intensities (its soft-tissue voxels'
  median ± 2.5 robust SD, connected), and atlas structures located together split the
  image between them: each may take only voxels near its own registered label
  (:attr:`LocatedBox.region`).

Boxes are inclusive voxel indices ``(i0, j0, k0, i1, j1, k1)`` along the target file's array
axes (the ``--box`` convention of ``medseg sam``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pydantic import Field
from scipy import ndimage

from medseg.core import ConfigError, ConfigModel, InputError
from medseg.io import Volume, read_image

logger = logging.getLogger(__name__)

_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class LocatorConfig(ConfigModel):
    """Settings of :func:`locate_structures`."""

    grid_mm: float = Field(default=3.0, gt=0.5, le=10.0, description="registration grid spacing")
    window_hu: tuple[float, float] = Field(
        default=(-200.0, 300.0), description="HU range the registration sees (clamped)"
    )
    min_overlap: float = Field(
        default=0.3, gt=0.0, le=1.0, description="least overlap of the translation search"
    )
    iterations: int = Field(default=150, ge=0, le=2000)
    sampling_fraction: float = Field(default=0.25, gt=0.0, le=1.0)
    margin_mm: float = Field(
        default=0.0,
        ge=0.0,
        le=50.0,
        description="added around each box (0: measured best; 5 mm cost the MSD spleen "
        "0.256 Dice, SAM following the crop's edges)",
    )
    seed: int = 0
    refine: bool = Field(
        default=True, description="fit each atlas box to the target's own organ intensities"
    )
    refine_reach_mm: float = Field(default=30.0, ge=0.0, le=100.0)
    refine_floor_hu: float = Field(
        default=0.0,
        ge=-1000.0,
        le=200.0,
        description="the fit's intensity statistics use only the registered label's voxels "
        "above this: fat and gas that a misplaced label covers are left out (IRCAD 17's "
        "registered spleen was half fat, median -10 HU, and the fit was rejected; with "
        "the floor it found the spleen, 174 mL)",
    )
    min_in_view: float = Field(
        default=0.35,
        ge=0.0,
        le=1.0,
        description="least fraction of the atlas label's volume that must fall inside the "
        "target's field of view after registration; less: absent (measured: kidneys above "
        "the TotalSegmentator DICOM slab 0.22/0.30, its liver and spleen 0.59/0.56)",
    )
    own_slack_mm: float | None = Field(
        default=20.0,
        ge=0.0,
        le=200.0,
        description="each atlas structure may take only the voxels that lie at most this "
        "much farther from its registered atlas label than from the nearest registered "
        "label of the other structures located with it (None: no limit). IRCAD 17 (4 "
        "organs): 0 / 10 / 20 mm kept 108 / 124 / 136 mL of the left kidney's 136 mL "
        "SAM mask; with the spleen's SAM mask over that kidney, 10 / 20 / 30 mm gave the "
        "kidney back 101 / 88 / 71 mL of it (54 mL without the limit); liver unchanged",
    )
    lung_overlap: float = Field(
        default=0.2,
        gt=0.0,
        le=1.0,
        description="an air region is lung when this fraction of it, or of the registered "
        "atlas lungs' air, is shared by the two",
    )


@dataclass(frozen=True)
class Atlas:
    """A labelled CT used to find organs in other CTs.

    Attributes
    ----------
    image
        CT in HU.
    labels
        Label map on ``image``'s grid.
    names
        Label value → structure name (e.g. ``liver``, ``kidney_left``).
    """

    image: Volume
    labels: Volume
    names: dict[int, str]


#: Files of an atlas folder (the bundled ``data/ct_totalsegmentator`` layout).
ATLAS_FILES = {
    "image": "example_ct_sm.nii.gz",
    "labels": "example_seg.nii.gz",
    "names": "labels_total.json",
}


def load_atlas(folder: str | Path) -> Atlas:
    """Read a labelled atlas folder: the CT, its label map and ``{"labels": {value: name}}``
    (file names :data:`ATLAS_FILES`, as in the bundled ``data/ct_totalsegmentator``).

    Raises
    ------
    ConfigError
        If a file is missing or the label names are unreadable.
    """
    folder = Path(folder)
    paths = {key: folder / name for key, name in ATLAS_FILES.items()}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        raise ConfigError(f"atlas folder lacks {', '.join(missing)}", path=folder)
    try:
        names = json.loads(paths["names"].read_text(encoding="utf-8"))["labels"]
        by_value = {int(value): str(name) for value, name in names.items()}
    except (OSError, ValueError, KeyError, AttributeError) as err:
        raise ConfigError("atlas label names unreadable", path=paths["names"]) from err
    return Atlas(
        image=read_image(paths["image"]),
        labels=read_image(paths["labels"]),
        names=by_value,
    )


@dataclass(frozen=True)
class LocatedBox:
    """Where a structure was found.

    Attributes
    ----------
    name
        Structure name (atlas / rule name).
    box_ijk
        Inclusive voxel box ``(i0, j0, k0, i1, j1, k1)`` of the target file's array axes.
    method
        ``"rules"`` or ``"atlas"``.
    open_k
        Whether the structure may continue beyond the box's (first, last) slice k: the atlas
        label was cut by the atlas's own field of view on that side.
    """

    name: str
    box_ijk: tuple[int, int, int, int, int, int]
    method: str
    open_k: tuple[bool, bool] = (False, False)
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)
    """Rule structures only: the structure itself on the target's grid (bool, array axes
    i, j, k): target voxels below -400 HU inside the 3 mm rule region grown by one voxel."""
    region: np.ndarray | None = field(default=None, compare=False, repr=False)
    """Atlas structures located with others: the target voxels (bool, array axes i, j, k)
    this structure may take, from the registered atlas labels, not the intensity fits (on
    the atlas CT itself the spleen's and left kidney's fits overlap); see
    ``LocatorConfig.own_slack_mm``. None: no limit."""
    expected_ml: float | None = None
    """Atlas structures: volume of the located region (registered label, fitted) in mL."""


# --------------------------------------------------------------------------- images


def _sitk_image(array: np.ndarray, affine: np.ndarray):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    lps = _LPS_FROM_RAS @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    return image


def _axis_aligned_grid(image, spacing_mm: float):
    """Resample ``image`` onto an LPS-axis-aligned grid of ``spacing_mm`` covering it."""
    import SimpleITK as sitk

    size = np.array(image.GetSize())
    corners = np.array(
        [
            image.TransformContinuousIndexToPhysicalPoint([float(c) for c in corner])
            for corner in np.array(np.meshgrid(*[[-0.5, s - 0.5] for s in size])).reshape(3, -1).T
        ]
    )
    low, high = corners.min(axis=0), corners.max(axis=0)
    out_size = np.maximum(np.ceil((high - low) / spacing_mm).astype(int), 1)
    reference = sitk.Image([int(s) for s in out_size], sitk.sitkFloat32)
    reference.SetSpacing([spacing_mm] * 3)
    reference.SetOrigin((low + spacing_mm / 2).tolist())
    return reference


def _resample(image, reference, *, nearest: bool = False, default: float = -1024.0):
    import SimpleITK as sitk

    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    pixel = sitk.sitkUInt16 if nearest else sitk.sitkFloat32
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, default, pixel)


def _body_mask(hu_zyx: np.ndarray) -> np.ndarray:
    """Largest connected region above -400 HU, holes filled slice by slice (z, y, x)."""
    foreground = hu_zyx > -400
    foreground = ndimage.binary_opening(foreground, iterations=1)
    labelled, count = ndimage.label(foreground)
    if count == 0:
        return foreground
    sizes = ndimage.sum_labels(foreground, labelled, index=np.arange(1, count + 1))
    body = labelled == (int(np.argmax(sizes)) + 1)
    for z in range(body.shape[0]):
        body[z] = ndimage.binary_fill_holes(body[z])
    return body


# --------------------------------------------------------------------------- rules


def locate_lungs(
    hu_zyx: np.ndarray,
    body: np.ndarray,
    spacing_mm: float,
    *,
    atlas_lungs: np.ndarray | None = None,
    min_overlap: float = 0.2,
) -> np.ndarray:
    """Lung labels (1 right, 2 left) on an LPS-aligned grid (z, y, x), from air and the body.

    Air below -400 HU inside the body outline, in connected regions. With ``atlas_lungs``
    (the registered atlas lung labels, bool, same grid) a region is lung when at least
    ``min_overlap`` of it, or of the atlas lungs' air, lies in the atlas lungs: gas in the
    bowel and stomach lies below the diaphragm, outside them. Without it (no atlas), regions
    of at least 100 mL and a fifth of the largest. Split at the body's mid-sagittal plane;
    in LPS, x grows to the patient's left.
    """
    air = (hu_zyx < -400) & body
    air = ndimage.binary_opening(air, iterations=1)
    labelled, count = ndimage.label(air)
    lungs = np.zeros(air.shape, dtype=bool)
    if count:
        index = np.arange(1, count + 1)
        sizes = ndimage.sum_labels(air, labelled, index=index)
        if atlas_lungs is not None:
            shared = ndimage.sum_labels(atlas_lungs, labelled, index=index)
            atlas_air = max(float(shared.sum()), 1.0)
            keep = (shared >= min_overlap * sizes) | (shared >= min_overlap * atlas_air)
            keep &= shared > 0
        else:
            keep = (sizes >= 100_000.0 / spacing_mm**3) & (sizes >= 0.2 * sizes.max())
        lungs = np.isin(labelled, index[keep])
    out = np.zeros(air.shape, dtype=np.uint8)
    if lungs.any():
        mid_x = float(np.nonzero(body)[2].mean())
        x = np.arange(air.shape[2])[None, None, :]
        out[lungs & (x < mid_x)] = 1
        out[lungs & (x >= mid_x)] = 2
    return out


# --------------------------------------------------------------------------- atlas


def _masked_ncc(
    fixed: np.ndarray,
    fixed_mask: np.ndarray,
    moving: np.ndarray,
    moving_mask: np.ndarray,
    *,
    min_overlap: float,
) -> tuple[np.ndarray, float]:
    """Best shift ``d`` (voxels, array axes) pairing fixed voxel p with moving voxel p - d.

    Masked normalised cross-correlation over every shift at once (Padfield 2012, with FFTs);
    shifts whose overlap is below ``min_overlap`` × the smaller mask are ignored.
    """
    from scipy.signal import fftconvolve

    def corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return fftconvolve(a, b[::-1, ::-1, ::-1], mode="full")

    f = np.where(fixed_mask, fixed, 0.0)
    m = np.where(moving_mask, moving, 0.0)
    mf, mm = fixed_mask.astype(np.float64), moving_mask.astype(np.float64)
    n = np.round(corr(mf, mm))
    s_f, s_m = corr(f, mm), corr(mf, m)
    s_ff, s_mm, s_fm = corr(f * f, mm), corr(mf, m * m), corr(f, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        numerator = s_fm - s_f * s_m / n
        denominator = np.sqrt(
            np.clip(s_ff - s_f**2 / n, 0, None) * np.clip(s_mm - s_m**2 / n, 0, None)
        )
        ncc = numerator / denominator
    ncc[(n < min_overlap * min(mf.sum(), mm.sum())) | ~np.isfinite(ncc)] = -np.inf
    best = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    shift = np.array(best) - (np.array(moving.shape) - 1)
    return shift, float(ncc[best])


def _initial_offset(fixed, moving, config: LocatorConfig) -> np.ndarray:
    """Translation (LPS mm, fixed → moving) from a masked NCC search over all shifts."""
    import SimpleITK as sitk

    step = 2
    arrays = []
    for image in (fixed, moving):
        hu = sitk.GetArrayFromImage(image)[::step, ::step, ::step]
        valid = hu > -1000.0  # outside the field of view is -1024 after resampling
        low, high = config.window_hu
        arrays.append((np.clip(hu, low, high).astype(np.float64), valid))
    (f, fm), (m, mm) = arrays
    shift_zyx, score = _masked_ncc(f, fm, m, mm, min_overlap=config.min_overlap)
    spacing = np.array(fixed.GetSpacing()) * step
    offset = np.array(moving.GetOrigin()) - np.array(fixed.GetOrigin()) - shift_zyx[::-1] * spacing
    logger.debug("translation search: offset %s mm, NCC %.3f", np.round(offset, 1), score)
    return offset


def _register_affine(fixed, moving, offset: np.ndarray, config: LocatorConfig):
    import SimpleITK as sitk

    transform = sitk.AffineTransform(3)
    transform.SetTranslation(offset.tolist())
    if config.iterations == 0:
        return transform
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(config.sampling_fraction, seed=config.seed + 1)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=0.01, numberOfIterations=config.iterations
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([2, 1])
    method.SetSmoothingSigmasPerLevel([1.0, 0.0])
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, moving)
    logger.debug(
        "affine registration: metric %.4f after %d iterations",
        method.GetMetricValue(),
        method.GetOptimizerIteration(),
    )
    return transform


def _box_to_target(
    box_zyx: tuple[np.ndarray, np.ndarray], grid, target: Volume, margin_mm: float
) -> tuple[int, int, int, int, int, int]:
    """Map an inclusive (z, y, x) box of the LPS grid into the target's voxel indices."""
    low, high = box_zyx
    corners = np.array(
        np.meshgrid(*[[lo - 0.5, hi + 0.5] for lo, hi in zip(low, high, strict=True)])
    )
    corners = corners.reshape(3, -1).T[:, ::-1]  # (x, y, z) continuous indices
    lps = np.array([grid.TransformContinuousIndexToPhysicalPoint(c.tolist()) for c in corners])
    ras = lps * np.array([-1.0, -1.0, 1.0])
    spacing = np.asarray(target.spacing_mm)
    ijk = (np.linalg.inv(target.affine) @ np.c_[ras, np.ones(len(ras))].T).T[:, :3]
    first = np.floor(ijk.min(axis=0) + 0.5 - margin_mm / spacing)
    last = np.ceil(ijk.max(axis=0) - 0.5 + margin_mm / spacing)
    shape = np.asarray(target.spatial_shape)
    first = np.clip(first, 0, shape - 1).astype(int)
    last = np.clip(last, 0, shape - 1).astype(int)
    return (
        int(first[0]),
        int(first[1]),
        int(first[2]),
        int(last[0]),
        int(last[1]),
        int(last[2]),
    )


def _cut_sides(atlas: Atlas, value: int, target: Volume) -> tuple[bool, bool]:
    """Whether atlas label ``value`` touches the atlas's (first, last) target slice side."""
    labels = atlas.labels.array
    ijk = np.array(np.nonzero(labels == value))
    world_z = (atlas.labels.affine[2, :3] @ ijk) + atlas.labels.affine[2, 3]
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in labels.shape[:3]])).reshape(3, -1)
    field_z = atlas.labels.affine[2, :3] @ corners + atlas.labels.affine[2, 3]
    step = float(np.abs(atlas.labels.affine[2, :3]).max())
    inferior = world_z.min() <= field_z.min() + step / 2
    superior = world_z.max() >= field_z.max() - step / 2
    # Target k grows superiorly when its affine's k column points up (S+).
    if target.affine[2, 2] >= 0:
        return bool(inferior), bool(superior)
    return bool(superior), bool(inferior)


def _bounding_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive (first, last) indices of a mask's voxels; callers pass non-empty masks."""
    where = np.nonzero(mask)
    return np.array([w.min() for w in where]), np.array([w.max() for w in where])


#: Structures found by rules rather than the atlas.
RULE_STRUCTURES = {"lung_right": 1, "lung_left": 2}


def locate_structures(
    image: Volume,
    names: list[str],
    *,
    atlas: Atlas | None = None,
    config: LocatorConfig | None = None,
) -> dict[str, LocatedBox]:
    """Find each named structure's 3D box in ``image`` (a CT in HU); no reference used.

    Parameters
    ----------
    image
        Target CT, HU, any orientation; array axes (i, j, k).
    names
        Structure names: ``lung_left``/``lung_right`` (rules) or names of the atlas's labels.
    atlas
        Labelled atlas CT; needed for any structure that is not found by rules.
    config
        Locator settings.

    Returns
    -------
    dict
        Name → :class:`LocatedBox`. Names that are absent (no lung air; less than
        ``config.min_in_view`` of the registered atlas label inside the field of view) are
        missing, each with one warning.

    Raises
    ------
    InputError
        If a name is neither a rule structure nor an atlas label, or the image is not 3D.
    """
    import SimpleITK as sitk

    config = config or LocatorConfig()
    if image.array.ndim != 3 or min(image.spatial_shape) < 2:
        raise InputError(f"the locator needs a 3D CT, not an array of shape {image.array.shape}")
    atlas_values = {name: value for value, name in (atlas.names if atlas else {}).items()}
    unknown = [n for n in names if n not in RULE_STRUCTURES and n not in atlas_values]
    if unknown:
        raise InputError(
            f"no rule or atlas label for {', '.join(unknown)}"
            + ("" if atlas else " (no atlas given)")
        )
    target = _sitk_image(image.array.astype(np.float32), image.affine)
    grid = _axis_aligned_grid(target, config.grid_mm)
    fixed = _resample(target, grid)
    fixed_hu = sitk.GetArrayFromImage(fixed)  # (z, y, x), LPS-aligned
    fixed_body = _body_mask(fixed_hu)
    found: dict[str, LocatedBox] = {}
    wanted_rules = [n for n in names if n in RULE_STRUCTURES]
    wanted_atlas = [n for n in names if n not in RULE_STRUCTURES]
    warped = None
    if atlas is not None and (wanted_atlas or wanted_rules):
        transform = _atlas_transform(fixed, atlas, config)
        atlas_labels = _sitk_image(atlas.labels.array.astype(np.uint16), atlas.labels.affine)
        warped = sitk.GetArrayFromImage(
            sitk.Resample(atlas_labels, fixed, transform, sitk.sitkNearestNeighbor, 0)
        )

    if wanted_rules:
        atlas_lungs = None
        if warped is not None and atlas is not None:
            lung_values = [v for v, n in atlas.names.items() if n.startswith("lung_")]
            atlas_lungs = np.isin(warped, lung_values) if lung_values else None
        lungs = locate_lungs(
            fixed_hu,
            fixed_body,
            config.grid_mm,
            atlas_lungs=atlas_lungs,
            min_overlap=config.lung_overlap,
        )
        on_target = _rule_labels_on_target(lungs, fixed, target)
        for name in wanted_rules:
            lung = lungs == RULE_STRUCTURES[name]
            if not lung.any():
                logger.warning("%s: absent, no lung air in the field of view; not drawn", name)
                continue
            mask = (on_target == RULE_STRUCTURES[name]) & (image.array < -400)
            box = _box_to_target(_bounding_box(lung), grid, image, config.margin_mm)
            found[name] = LocatedBox(name, box, "rules", mask=mask)

    if wanted_atlas and atlas is not None and warped is not None:
        registered: dict[str, np.ndarray] = {}
        atlas_voxel_ml = abs(float(np.linalg.det(atlas.labels.affine[:3, :3]))) / 1000.0
        for name in wanted_atlas:
            mask = warped == atlas_values[name]
            atlas_ml = float((atlas.labels.array == atlas_values[name]).sum()) * atlas_voxel_ml
            in_view = float(mask.sum()) * config.grid_mm**3 / 1000.0 / max(atlas_ml, 1e-9)
            if in_view < config.min_in_view or not mask.any():
                logger.warning(
                    "%s: absent, %.0f%% of the registered atlas label in the field of view "
                    "(< %.0f%%); not drawn",
                    name,
                    100 * in_view,
                    100 * config.min_in_view,
                )
                continue
            registered[name] = mask
            if config.refine:
                mask = _refine_with_intensity(fixed_hu, fixed_body, mask, config)
            found[name] = LocatedBox(
                name,
                _box_to_target(_bounding_box(mask), grid, image, config.margin_mm),
                "atlas+intensity" if config.refine else "atlas",
                _cut_sides(atlas, atlas_values[name], image),
                expected_ml=float(mask.sum()) * config.grid_mm**3 / 1000.0,
            )
        if config.own_slack_mm is not None and len(registered) > 1:
            regions = _own_regions(registered, config.grid_mm, config.own_slack_mm)
            on_target = _rule_labels_on_target(regions, fixed, target, grow=False)
            for bit, name in enumerate(registered):
                region = (on_target & (1 << bit)) > 0
                found[name] = replace(found[name], region=region)
    return found


def _own_regions(masks: dict[str, np.ndarray], grid_mm: float, slack_mm: float) -> np.ndarray:
    """Bit ``b`` (the ``b``-th structure) set where that structure's mask is at most
    ``slack_mm`` farther than the nearest other structure's mask (uint16, grid z, y, x)."""
    distance = np.stack(
        [ndimage.distance_transform_edt(~m, sampling=grid_mm) for m in masks.values()]
    )
    out = np.zeros(distance.shape[1:], dtype=np.uint16)
    for bit in range(len(distance)):
        nearest_other = np.delete(distance, bit, axis=0).min(axis=0)
        out[distance[bit] <= nearest_other + slack_mm] |= np.uint16(1 << bit)
    return out


def _rule_labels_on_target(
    labels_zyx: np.ndarray, grid, target, *, grow: bool = True
) -> np.ndarray:
    """Labels of the 3 mm grid (grown by one voxel) on the target's voxels (i, j, k)."""
    import SimpleITK as sitk

    grown = ndimage.grey_dilation(labels_zyx, size=(3, 3, 3)) if grow else labels_zyx
    image = sitk.GetImageFromArray(grown.astype(np.uint16))
    image.CopyInformation(grid)
    resampled = sitk.Resample(image, target, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return np.transpose(sitk.GetArrayFromImage(resampled), (2, 1, 0))


def _refine_with_intensity(
    hu_zyx: np.ndarray, body: np.ndarray, warped: np.ndarray, config: LocatorConfig
) -> np.ndarray:
    """The organ as the target shows it: the connected region of the warped label's own
    intensities (median ± 2.5 robust SD, at least ± 30 HU, of its median-filtered voxels
    above ``refine_floor_hu``) within
    ``refine_reach_mm`` of the warped label that overlaps it most; the warped label itself
    when that region is less than half or more than twice its size.
    """
    smooth = ndimage.median_filter(hu_zyx, size=3)
    tissue = body & (smooth > config.refine_floor_hu)
    core = ndimage.binary_erosion(warped) & tissue
    if core.sum() < 20:
        core = warped & tissue
    if not core.any():
        return warped
    values = smooth[core]
    median = float(np.median(values))
    spread = max(2.5 * 1.4826 * float(np.median(np.abs(values - median))), 30.0)
    reach = max(1, round(config.refine_reach_mm / config.grid_mm))
    region = ndimage.binary_dilation(warped, iterations=reach)
    candidate = (np.abs(smooth - median) <= spread) & region & body
    candidate = ndimage.binary_opening(candidate, iterations=1)
    labelled, count = ndimage.label(candidate)
    if count == 0:
        return warped
    overlap = ndimage.sum_labels(warped, labelled, index=np.arange(1, count + 1))
    best = labelled == (int(np.argmax(overlap)) + 1)
    ratio = best.sum() / max(1, warped.sum())
    if not 0.5 <= ratio <= 2.0:
        logger.debug("intensity refinement rejected (size ratio %.2f)", ratio)
        return warped
    return best


def _atlas_transform(fixed, atlas: Atlas, config: LocatorConfig):
    """Affine transform (target LPS mm → atlas LPS mm) from translation search + affine."""
    import SimpleITK as sitk

    moving_full = _sitk_image(atlas.image.array.astype(np.float32), atlas.image.affine)
    moving = _resample(moving_full, _axis_aligned_grid(moving_full, config.grid_mm))
    offset = _initial_offset(fixed, moving, config)
    low, high = config.window_hu
    fixed_w = sitk.Clamp(fixed, sitk.sitkFloat32, low, high)
    moving_w = sitk.Clamp(moving, sitk.sitkFloat32, low, high)
    return _register_affine(fixed_w, moving_w, offset, config)


def register_atlas(
    image: Volume,
    atlas: Atlas,
    *,
    config: LocatorConfig | None = None,
    fixed=None,
) -> Volume:
    """The atlas labels registered onto ``image``'s grid (uint16, nearest neighbour).

    A masked normalised cross-correlation search over all translations (6 mm grid, soft
    tissue window), then an affine registration (Mattes mutual information, 2 levels) on
    the 3 mm grid.
    """
    import SimpleITK as sitk

    config = config or LocatorConfig()
    target = _sitk_image(image.array.astype(np.float32), image.affine)
    if fixed is None:
        fixed = _resample(target, _axis_aligned_grid(target, config.grid_mm))
    transform = _atlas_transform(fixed, atlas, config)
    atlas_labels = _sitk_image(atlas.labels.array.astype(np.uint16), atlas.labels.affine)
    warped = sitk.Resample(atlas_labels, target, transform, sitk.sitkNearestNeighbor, 0)
    array = np.transpose(sitk.GetArrayFromImage(warped), (2, 1, 0))
    return image.with_array(np.ascontiguousarray(array.astype(np.uint16)))
