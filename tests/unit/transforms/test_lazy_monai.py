from __future__ import annotations

import subprocess
import sys

import medseg.transforms


def test_every_exported_name_resolves() -> None:
    for name in medseg.transforms.__all__:
        assert getattr(medseg.transforms, name) is not None, name


def test_sam_path_does_not_import_monai() -> None:
    code = (
        "import sys, medseg.sam, medseg.io, medseg.models, medseg.cli._sam; "
        "from medseg.transforms import TrainingTarget, to_display_slice; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'monai'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert result.stdout.strip() == "[]"
