"""File helpers: atomic writes and content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from medseg.core._errors import OutputExistsError

_CHUNK_BYTES = 1 << 20
_TMP_PREFIX = ".tmp-"


def compute_sha256(path: str | Path) -> str:
    """Return the hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _host_tag() -> str:
    """A short tag of this machine, so stale temporaries are told from other hosts' ones."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> int:
    """Remove ``.tmp-*`` files that :func:`atomic_output` left in ``folder`` when its process
    was killed (same host, process gone); return how many were removed."""
    folder = Path(folder)
    prefix = f"{_TMP_PREFIX}{_host_tag()}-"
    removed = 0
    if not folder.is_dir():
        return 0
    for candidate in folder.glob(f"{prefix}*"):
        pid_text = candidate.name[len(prefix) :].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        if not _process_alive(int(pid_text)) and candidate.is_file():
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed += 1
    return removed


def _current_umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it (then put it back)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Nothing half-written is ever visible at ``path``: on any exception the temporary file
    is removed, and temporaries left by a killed process (same host) are removed the next
    time a file is written into that folder. The temporary name keeps the final suffixes
    (``.nii.gz``) so writers that infer the format from the name still work. The path is
    normalised first (``a/../b`` → ``b``), and the file gets the mode the umask allows
    (0644 under umask 022), as a plain ``open`` would give it.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    path = Path(os.path.normpath(os.fspath(path)))
    if path.exists() and not overwrite:
        raise OutputExistsError("output already exists; pass --overwrite to replace it", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    suffix = "".join(path.suffixes)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f"{_TMP_PREFIX}{_host_tag()}-{os.getpid()}-", suffix=suffix, dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        yield tmp_path
        if tmp_path.is_file():
            os.chmod(tmp_path, 0o666 & ~_current_umask())
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
