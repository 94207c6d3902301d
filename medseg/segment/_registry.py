"""The registry of segmenters, keyed by ``segment.method``."""

from __future__ import annotations

from medseg.core import ConfigError, ConfigModel, look_up_option
from medseg.segment._base import Segmenter, SegmenterSpec

_SPECS: dict[str, SegmenterSpec] = {}


def register_segmenter(spec: SegmenterSpec) -> None:
    """Add ``spec`` to the registry; ConfigError if its method or section is taken."""
    for other in _SPECS.values():
        if spec.method == other.method or spec.section == other.section:
            raise ConfigError(
                f"segmenter {spec.method!r} (section {spec.section!r}) clashes with the "
                f"registered {other.method!r} (section {other.section!r})"
            )
    _SPECS[spec.method] = spec


def segmenter_spec(method: str) -> SegmenterSpec:
    """The registered segmenter called ``method``; ConfigError with "did you mean"."""
    return _SPECS[look_up_option(str(method), _SPECS, what="segment method")]


def list_segmenters() -> list[SegmenterSpec]:
    """Registered segmenters, in registration order."""
    return list(_SPECS.values())


def build_segmenter(method: str, settings: ConfigModel | None) -> Segmenter:
    """The segmenter ``method`` built from its config section (None: its defaults)."""
    spec = segmenter_spec(method)
    if settings is None:
        if not spec.default_settings:
            raise ConfigError(f"segment.{spec.section} is required for method {spec.method}")
        settings = spec.config_type()
    if not isinstance(settings, spec.config_type):
        raise ConfigError(
            f"segment.{spec.section} must be a {spec.config_type.__name__}, "
            f"not {type(settings).__name__}"
        )
    return spec.build(settings)
