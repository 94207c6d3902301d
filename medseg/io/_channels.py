"""Several images of one case (e.g. MR sequences) stacked as channels on one grid."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg.core import ChannelError
from medseg.io._read import read_image
from medseg.io._volume import Volume

logger = logging.getLogger(__name__)


def check_channel_names(found: Sequence[str], *, expected: Sequence[str]) -> None:
    """Refuse channel names that are not exactly ``expected`` (order free).

    Raises
    ------
    ChannelError
        Naming the missing, extra or repeated channels and the expected ones.
    """
    found, expected = list(found), list(expected)
    repeated = sorted({n for n in found if found.count(n) > 1})
    missing = [n for n in expected if n not in found]
    extra = [n for n in found if n not in expected]
    if not (repeated or missing or extra):
        return
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected {', '.join(extra)}")
    if repeated:
        problems.append(f"repeated {', '.join(repeated)}")
    raise ChannelError(
        f"the model expects channels {', '.join(expected)}; {'; '.join(problems)} "
        f"(give each as --channel NAME=FILE)",
        expected=expected,
        found=found,
    )


def resample_to_grid(volume: Volume, reference: Volume, *, order: int = 1) -> Volume:
    """``volume`` resampled onto ``reference``'s grid (shape and affine), world-aligned.

    Linear interpolation (``order=1``) by default, nearest for ``order=0``; voxels outside
    the source take the source's minimum. Returns ``volume`` itself when the grids agree.
    """
    shape = reference.spatial_shape
    if tuple(volume.spatial_shape) == tuple(shape) and np.allclose(
        volume.affine, reference.affine, atol=1e-4
    ):
        return volume
    # reference voxel -> world -> source voxel
    matrix = np.linalg.inv(volume.affine) @ reference.affine
    source = np.asarray(volume.array, dtype=np.float32)
    out = ndimage.affine_transform(
        source,
        matrix[:3, :3],
        offset=matrix[:3, 3],
        output_shape=tuple(shape),
        order=order,
        mode="constant",
        cval=float(source.min()),
    )
    return Volume(array=out, affine=reference.affine.copy(), metadata=dict(volume.metadata))


def read_channels(
    paths: Mapping[str, str | Path], *, expected: Sequence[str] | None = None
) -> Volume:
    """Read named single-channel images into one Volume ``(X, Y, Z, C)`` float32.

    The channel order is ``expected`` when given (else the order of ``paths``); the grid is
    that of the first channel, and every other channel is resampled onto it with
    :func:`resample_to_grid` when its shape or affine differ.

    Raises
    ------
    ChannelError
        If the names are not exactly ``expected`` or an image has more than one channel.
    """
    names = list(expected) if expected is not None else list(paths)
    if not names:
        raise ChannelError("no channels given (give each as --channel NAME=FILE)")
    check_channel_names(list(paths), expected=names)
    arrays: list[np.ndarray] = []
    reference: Volume | None = None
    for name in names:
        volume = read_image(paths[name])
        if volume.array.ndim != 3:
            raise ChannelError(
                f"channel {name} must be one 3D image, found shape {volume.array.shape}",
                expected=names,
                found=list(paths),
                path=paths[name],
            )
        if reference is None:
            reference = volume
        elif volume is not reference:
            resampled = resample_to_grid(volume, reference)
            if resampled is not volume:
                logger.info("channel %s resampled onto the %s grid", name, names[0])
            volume = resampled
        arrays.append(np.asarray(volume.array, dtype=np.float32))
    if reference is None:  # unreachable: names is not empty
        raise ChannelError("no channels read")
    return Volume(
        array=np.stack(arrays, axis=-1),
        affine=reference.affine.copy(),
        metadata={**reference.metadata, "channels": names},
    )


def find_content_box(volume: Volume, *, margin: int = 2) -> tuple[slice, slice, slice]:
    """Spatial box of the voxels above each channel's minimum (e.g. a skull-stripped brain).

    The box grows by ``margin`` voxels per side, clipped to the array; an image with no such
    voxel gives the whole grid.
    """
    array = np.asarray(volume.array)
    if array.ndim == 3:
        array = array[..., None]
    minima = array.reshape(-1, array.shape[-1]).min(axis=0)
    inside = np.any(array > minima, axis=-1)
    if not inside.any():
        return tuple(slice(0, n) for n in inside.shape)  # type: ignore[return-value]
    box = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(inside.any(axis=others))
        box.append(
            slice(
                max(0, int(hits[0]) - margin), min(inside.shape[axis], int(hits[-1]) + margin + 1)
            )
        )
    return tuple(box)  # type: ignore[return-value]


def crop_volume(volume: Volume, box: tuple[slice, ...]) -> Volume:
    """The sub-volume ``volume.array[box]`` with its affine moved to the box's first voxel."""
    start = np.array([s.start or 0 for s in box[:3]] + [1.0])
    affine = volume.affine.copy()
    affine[:3, 3] = (volume.affine @ start)[:3]
    return Volume(
        array=np.asarray(volume.array)[box[:3]], affine=affine, metadata=dict(volume.metadata)
    )
