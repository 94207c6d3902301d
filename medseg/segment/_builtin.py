"""The segmenters medseg ships, registered in this order (the order of the ``segment:``
sections in a pipeline's schema). A new segmenter: one module with its config, class and
``SPEC``, plus one line here."""

from __future__ import annotations

from medseg.segment import (
    _channel_model,
    _checkpoint_instance,
    _checkpoint_semantic,
    _sam_box_3d,
    _sam_slices,
    _sam_text,
    _watershed,
)
from medseg.segment._registry import register_segmenter

BUILTIN_SEGMENTERS = (
    _sam_slices.SPEC,
    _watershed.SPEC,
    _checkpoint_semantic.SPEC,
    _checkpoint_instance.SPEC,
    _sam_box_3d.SPEC,
    _channel_model.SPEC,
    _sam_text.SPEC,
)

for _spec in BUILTIN_SEGMENTERS:
    register_segmenter(_spec)
