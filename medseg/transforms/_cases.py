"""Cases as channel-first arrays: the layout networks train and infer on.

A 3D image becomes ``(C, i, j, k)``; a 2D image (a one-slice Volume from
:func:`~medseg.io.read_image`) becomes ``(C, column, row)``. Co-registered extra images of a
case (``additional_images`` in the manifest, e.g. MR sequences) are stacked as channels in
name order after the main image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg.core import GeometryError, InputError
from medseg.io import Case, Volume, read_image, reorient_like


@dataclass(frozen=True)
class CaseArrays:
    """One case ready for a network.

    Attributes
    ----------
    case_id
        Pseudonymous id from the manifest.
    image
        ``(C, *spatial)`` float32; spatial axes ``(i, j, k)`` for 3D, ``(column, row)`` for 2D.
    label
        ``spatial`` uint8 class map (0 background), or None.
    spacing_mm
        Voxel size per spatial axis in mm.
    affine
        The source Volume's 4×4 voxel→RAS affine.
    source_shape
        Spatial shape of the source Volume (3 values; 2D images have k = 1).
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray | None
    spacing_mm: tuple[float, ...]
    affine: np.ndarray
    source_shape: tuple[int, ...]

    @property
    def is_2d(self) -> bool:
        """True for a 2D image."""
        return self.image.ndim == 3


def _is_2d(volume: Volume) -> bool:
    return bool(volume.metadata.get("is_2d")) or (
        volume.array.ndim >= 3 and volume.array.shape[2] == 1 and volume.array.ndim == 4
    )


def volume_to_channels(volume: Volume, *, is_2d: bool | None = None) -> np.ndarray:
    """Channel-first float32 array of a Volume (see the module docstring for the layout)."""
    two_d = _is_2d(volume) if is_2d is None else is_2d
    array = np.asarray(volume.array)
    if two_d:
        array = array[:, :, 0]
        return (
            np.moveaxis(array, -1, 0).astype(np.float32)
            if array.ndim == 3
            else (array[None].astype(np.float32))
        )
    if array.ndim == 4:
        return np.moveaxis(array, -1, 0).astype(np.float32)
    return array[None].astype(np.float32)


def label_to_classes(
    volume: Volume, *, labels: Mapping[int, str], is_2d: bool, what: str = "label"
) -> np.ndarray:
    """Class map (uint8, spatial axes as the image) from a label Volume.

    Values must be 0 or a key of ``labels``. A file holding a single non-zero value (e.g.
    0/255 GIF masks) or an instance map (1..N) is accepted when ``labels`` has exactly one
    class: every non-zero voxel becomes that class.
    """
    array = np.asarray(volume.array)
    if array.ndim == 4:
        array = array[..., 0]  # RGB-encoded binary masks: any channel
    if is_2d:
        array = array[:, :, 0]
    values = set(np.unique(array).tolist()) - {0}
    allowed = {int(k) for k in labels}
    if values <= allowed:
        return array.astype(np.uint8)
    if len(allowed) == 1:
        return (array > 0).astype(np.uint8) * np.uint8(next(iter(allowed)))
    raise InputError(
        f"{what} values must be 0 or one of {sorted(allowed)}, found {sorted(values)[:8]}; "
        "fix the manifest's labels section"
    )


def instances_from_volume(volume: Volume, *, is_2d: bool) -> np.ndarray:
    """Instance map (int32, spatial axes as the image) from an instance label Volume.

    Raises
    ------
    InputError
        If the values are not non-negative integers below 2**31.
    """
    array = np.asarray(volume.array)
    if array.ndim == 4:
        array = array[..., 0]  # a colour axis written by some tools: ids are in any channel
    if is_2d:
        array = array[:, :, 0]
    if array.size and (array.min() < 0 or array.max() >= 2**31 or not np.all(array % 1 == 0)):
        raise InputError("instance label map must hold integer ids 0 (background) .. 2**31-1")
    return array.astype(np.int32)


def load_case(
    case: Case,
    *,
    root: str | Path,
    labels: Mapping[int, str],
    with_label: bool = True,
    image_keys: Sequence[str] | None = None,
    instance_label: bool = False,
) -> CaseArrays:
    """Read a manifest case (image, extra channels, label) into a :class:`CaseArrays`.

    ``image_keys`` names the inputs stacked as channels: ``"image"`` and names from the
    case's ``additional_images`` (default: all of them, sorted after the image). Plans store
    the keys they were made with, so a case with extra files (e.g. a second observer's
    annotation) still gives the network the channels it was trained on.

    ``instance_label``: keep the label's values as they are (an instance map, 0 background,
    1..N one object each) as int32 instead of mapping them to the manifest's classes.
    """
    root = Path(root)
    volume = read_image(root / case.image)
    two_d = _is_2d(volume)
    channels = [volume_to_channels(volume, is_2d=two_d)]
    keys = (
        list(image_keys) if image_keys is not None else ["image", *sorted(case.additional_images)]
    )
    missing = [k for k in keys if k != "image" and k not in case.additional_images]
    if keys[:1] != ["image"] or missing:
        raise InputError(
            f"case {case.id}: expected inputs {keys} (first 'image'), missing {missing}"
        )
    for name in keys[1:]:
        extra = read_image(root / case.additional_images[name])
        extra = reorient_like(extra, volume, what=f"image {name}")
        channels.append(volume_to_channels(extra, is_2d=two_d))
    image = np.concatenate(channels, axis=0)
    label = None
    if with_label and case.label is not None:
        label_volume = read_image(root / case.label)
        try:
            label_volume = reorient_like(label_volume, volume, what="label")
        except GeometryError as err:
            raise GeometryError(f"case {case.id}: {err}") from err
        if instance_label:
            label = instances_from_volume(label_volume, is_2d=two_d)
        else:
            label = label_to_classes(label_volume, labels=labels, is_2d=two_d)
    spacing = volume.spacing_mm[:2] if two_d else volume.spacing_mm
    return CaseArrays(
        case_id=case.id,
        image=image,
        label=label,
        spacing_mm=tuple(float(s) for s in spacing),
        affine=volume.affine,
        source_shape=volume.spatial_shape,
    )


def volume_to_case(volume: Volume, *, case_id: str) -> CaseArrays:
    """A :class:`CaseArrays` without label from an already-read Volume (for inference)."""
    two_d = _is_2d(volume)
    spacing = volume.spacing_mm[:2] if two_d else volume.spacing_mm
    return CaseArrays(
        case_id=case_id,
        image=volume_to_channels(volume, is_2d=two_d),
        label=None,
        spacing_mm=tuple(float(s) for s in spacing),
        affine=volume.affine,
        source_shape=volume.spatial_shape,
    )
