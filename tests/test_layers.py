"""The import-linter contracts in pyproject.toml hold (layers depend downward only)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def test_import_contracts_hold(repo_root: Path) -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports is not None, "import-linter is a test dependency"
    result = subprocess.run(
        [lint_imports], cwd=repo_root, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_print_and_no_bare_assert_in_package(repo_root: Path) -> None:
    offenders = []
    for path in (repo_root / "medseg").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            stripped = line.strip()
            if stripped.startswith("assert ") or (
                stripped.startswith("print(") and path.parent.name != "cli"
            ):
                offenders.append(f"{path.relative_to(repo_root)}:{number}")
    assert offenders == []
