"""Training of the project's own segmenters.

Empty until the training issue lands; the layer exists so the import contracts hold from
the start.
"""

from __future__ import annotations

__all__: list[str] = []
