"""De-identification of DICOM and NIfTI (PS3.15 Annex E); no torch here.

Empty until the de-identification issue lands; the layer exists so the import contracts
hold from the start.
"""

from __future__ import annotations

__all__: list[str] = []
