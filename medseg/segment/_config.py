"""``segment:`` of a pipeline: ``method`` plus one optional section per registered segmenter.

:class:`SegmentMethod` and :class:`SegmentConfig` are derived from the registry once the
built-in segmenters are registered, so a new segmenter needs no edit here.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import create_model, model_validator

from medseg.core import ConfigModel
from medseg.segment import _builtin  # noqa: F401  (registers the built-in segmenters)
from medseg.segment._base import Segmenter
from medseg.segment._registry import build_segmenter, list_segmenters, segmenter_spec

#: Segmenters the runner can call: one member per registered ``segment.method``.
SegmentMethod = enum.Enum(  # type: ignore[misc]
    "SegmentMethod",
    [(spec.method.upper(), spec.method) for spec in list_segmenters()],
    type=str,
    module=__name__,
)
SegmentMethod.__doc__ = "Segmenters the runner can call (the registry's methods)."


class _SegmentConfigBase(ConfigModel):
    """Which segmenter runs and its settings."""

    method: SegmentMethod  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _method_has_settings(self) -> _SegmentConfigBase:
        spec = segmenter_spec(self.method.value)
        if getattr(self, spec.section) is None:
            raise ValueError(
                f"method {spec.method} needs a '{spec.section}' section{spec.section_hint}"
            )
        return self

    def settings(self) -> ConfigModel:
        """The config section of the chosen method."""
        return getattr(self, segmenter_spec(self.method.value).section)

    def build(self) -> Segmenter:
        """The chosen segmenter, built from its section."""
        return build_segmenter(self.method.value, self.settings())


def _section_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for spec in list_segmenters():
        if spec.default_settings:
            fields[spec.section] = (spec.config_type, spec.config_type())
        else:
            fields[spec.section] = (spec.config_type | None, None)
    return fields


SegmentConfig = create_model(  # type: ignore[call-overload]
    "SegmentConfig",
    __base__=_SegmentConfigBase,
    __module__=__name__,
    __doc__=_SegmentConfigBase.__doc__,
    **_section_fields(),
)
