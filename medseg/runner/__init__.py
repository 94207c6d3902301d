"""Pipeline runner: composes the stages below it (the demo is its first pipeline)."""

from __future__ import annotations

from medseg.runner._demo import DemoConfig, DemoResult, SamStageConfig, TrackingConfig, run_demo
from medseg.runner._schemas import CONFIG_KINDS, config_schema

__all__ = [
    "CONFIG_KINDS",
    "DemoConfig",
    "DemoResult",
    "SamStageConfig",
    "TrackingConfig",
    "config_schema",
    "run_demo",
]
