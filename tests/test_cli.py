"""The CLI contract: help, version, exit codes and one-line errors without tracebacks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medseg import __version__
from medseg.cli import main
from medseg.core import ExitCode


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


_COMMANDS = {
    "demo",
    "run",
    "convert",
    "inspect",
    "manifest",
    "config",
    "export",
    "deid",
    "deid-check",
    "evaluate",
    "report",
    "sam",
    "plan",
    "train",
    "infer",
}


def test_help_lists_exactly_the_working_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from medseg.cli import build_parser

    subparsers = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    assert set(subparsers.choices) == _COMMANDS
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in _COMMANDS:
        assert f"    {command} " in out or f"    {command}\n" in out, command


def test_config_validate_ok(repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = (
        sorted((repo_root / "pipelines").glob("*.yaml"))
        + sorted((repo_root / "data_manifests").glob("*.yaml"))
        + sorted((repo_root / "configs").rglob("*.yaml"))
        + sorted((repo_root / "plans").glob("*.yaml"))
    )
    assert main(["config", "validate", *map(str, files)]) == ExitCode.OK
    assert capsys.readouterr().out.count("OK ") == len(files)


def test_config_validate_error_names_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "pipelines" / "demo.yaml"
    bad.parent.mkdir()
    bad.write_text(
        "segment:\n  method: sam_reference_box\n  sam:\n    box_margin_px: wide\n"
        "    windw: abdomen\n"
    )
    code = main(["config", "validate", str(bad)])
    err = capsys.readouterr().err
    assert code == ExitCode.CONFIG
    assert err.count("\n") == 1  # one line
    assert str(bad) in err
    assert "segment.sam.box_margin_px" in err
    assert "segment.sam.windw: unknown key" in err
    assert "name: required key is missing" in err
    assert "Traceback" not in err


def test_config_kind_did_you_mean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("{}\n")
    assert main(["config", "validate", "--kind", "pipelin", str(path)]) == ExitCode.CONFIG
    assert "did you mean 'pipeline'" in capsys.readouterr().err


def test_manifest_verify_and_tampering(
    repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = repo_root / "data_manifests" / "ct_totalsegmentator.yaml"
    assert main(["manifest", "verify", str(manifest)]) == ExitCode.OK
    (tmp_path / "data_manifests").mkdir()
    shutil.copy(manifest, tmp_path / "data_manifests")
    shutil.copytree(repo_root / "data/ct_totalsegmentator", tmp_path / "data/ct_totalsegmentator")
    target = tmp_path / "data/ct_totalsegmentator/labels_total.json"
    target.write_text(target.read_text().replace("liver", "livre"))
    capsys.readouterr()
    code = main(["manifest", "verify", str(tmp_path / "data_manifests/ct_totalsegmentator.yaml")])
    assert code == ExitCode.INTEGRITY
    assert "labels_total.json: altered" in capsys.readouterr().err


def test_manifest_hash_prints_files_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.txt").write_bytes(b"abc")
    assert main(["manifest", "hash", str(tmp_path)]) == ExitCode.OK
    assert "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" in (
        capsys.readouterr().out
    )


def test_console_script_exit_code_and_traceback_only_in_debug(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [unclosed\n")
    command = [sys.executable, "-m", "medseg", "config", "validate", "--kind", "pipeline", str(bad)]
    quiet = subprocess.run(command, capture_output=True, text=True, check=False)
    assert quiet.returncode == ExitCode.CONFIG
    assert "Traceback" not in quiet.stderr
    assert "invalid YAML at line" in quiet.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "medseg", "--log-level", "debug", *command[3:]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert debug.returncode == ExitCode.CONFIG
    assert "Traceback" in debug.stderr


def test_usage_error_exit_code() -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--no-such-flag"])
    assert info.value.code == ExitCode.USAGE
