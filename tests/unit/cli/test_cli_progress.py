"""Progress bars with time left (issue 24, item 12): shown on a terminal, absent in a pipe
and with --quiet, so logs stay clean."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from medseg.core import progress, progress_enabled, set_progress_enabled

#: tqdm's bar: "convert:  33%|███▎      | 1/3 [00:01<00:02, ...]"
_BAR = re.compile(r"convert:\s+\d+%\|")
IMAGE = "data/cells_dsb2018/test/images/06350c7cc618be44.png"


def _convert_argv(repo_root: Path, tmp_path: Path, *extra: str) -> list[str]:
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    for index in range(3):
        shutil.copy(repo_root / IMAGE, folder / f"im{index}.png")
    out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
    return [sys.executable, "-m", "medseg", "convert", "-i", str(folder), "-o", str(out), *extra]


def _run_on_a_terminal(argv: list[str]) -> str:
    """Run with stdout and stderr on a pseudo-terminal; return what it showed."""
    leader, follower = pty.openpty()
    # a terminal 120 columns wide (a fresh pseudo-terminal has none: tqdm would draw nothing)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(argv, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        shown += chunk
    process.wait(timeout=120)
    os.close(leader)
    assert process.returncode == 0, shown.decode(errors="replace")
    return shown.decode(errors="replace")


def test_a_terminal_shows_a_bar_with_time_left(repo_root: Path, tmp_path: Path) -> None:
    shown = _run_on_a_terminal(_convert_argv(repo_root, tmp_path))
    assert _BAR.search(shown)
    assert "/3 [" in shown  # count out of the total, then [elapsed<left, rate]
    assert "<" in shown.split("/3 [", 1)[1]


def test_quiet_and_pipes_show_no_bar(repo_root: Path, tmp_path: Path) -> None:
    shown = _run_on_a_terminal(_convert_argv(repo_root, tmp_path, "--quiet"))
    assert not _BAR.search(shown)
    piped = subprocess.run(
        _convert_argv(repo_root, tmp_path), capture_output=True, text=True, check=True
    )
    assert not _BAR.search(piped.stderr)
    assert "\r" not in piped.stderr


def test_set_progress_enabled_switches_bars_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    set_progress_enabled(True)  # an in-process `medseg --quiet ...` in an earlier test turns it off
    try:
        assert progress_enabled()
        set_progress_enabled(False)
        assert not progress_enabled()
        assert list(progress([1, 2], description="x")) == [1, 2]
    finally:
        set_progress_enabled(True)
