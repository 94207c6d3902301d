"""What a network is trained to predict from a case's label map (no MONAI import here, so
that loading a checkpoint or running SAM does not pay for ``monai.transforms``)."""

from __future__ import annotations

import enum
from collections.abc import Mapping

from medseg.core import InputError


class TrainingTarget(str, enum.Enum):
    """What a network is trained to predict from a case's label map.

    ``semantic``: the label map's classes as they are. ``instance_boundary``: the label map
    holds instances (0 background, 1..N one object each) and the network learns three
    classes, background / interior / boundary (:func:`compute_boundary_classes`).
    ``instance_core``: as ``instance_boundary`` plus a fourth class, each instance's core (its
    interior pixels at least ``core_fraction`` of the instance's largest distance from its
    outline: a coarse distance map as a class, the seeds of the marker watershed; cores of
    touching nuclei are far apart even where their interiors meet).
    """

    SEMANTIC = "semantic"
    INSTANCE_BOUNDARY = "instance_boundary"
    INSTANCE_CORE = "instance_core"

    @property
    def is_instance(self) -> bool:
        """Whether the label maps are instance maps turned into boundary classes."""
        return self is not TrainingTarget.SEMANTIC


#: Class indices of the ``instance_boundary`` target.
INTERIOR_CLASS = 1
BOUNDARY_CLASS = 2
#: The core class of the ``instance_core`` target (a part of the interior).
CORE_CLASS = 3


def target_label_names(target: TrainingTarget, labels: Mapping[int, str]) -> dict[int, str]:
    """Class names a network trained for ``target`` outputs (background 0 not included).

    For ``instance_boundary`` the dataset must have one object class, e.g. ``{1: nucleus}``
    → ``{1: nucleus_interior, 2: nucleus_boundary}``.
    """
    names = {int(k): v for k, v in labels.items()}
    if target is TrainingTarget.SEMANTIC:
        return names
    if len(names) != 1:
        raise InputError(
            f"target {target.value} needs a dataset with one object class, found "
            f"{len(names)} ({', '.join(names.values())})"
        )
    name = next(iter(names.values()))
    out = {INTERIOR_CLASS: f"{name}_interior", BOUNDARY_CLASS: f"{name}_boundary"}
    if target is TrainingTarget.INSTANCE_CORE:
        out[CORE_CLASS] = f"{name}_core"
    return out
