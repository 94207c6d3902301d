"""Per-case run state in a small SQLite file, so batch runs resume and lose no case.

Only the coordinating process writes; workers return results to it. States move
``pending → running → done | failed``; a run killed mid-way leaves ``running`` rows, which
:meth:`CaseStateStore.requeue_interrupted` turns back into ``pending`` on resume.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class CaseStatus(str, enum.Enum):
    """Where a case stands in a batch run."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class CaseRecord:
    """One row of the state table."""

    case_id: str
    status: CaseStatus
    attempts: int
    error_type: str | None
    error_message: str | None
    result: dict[str, object] | None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error_type TEXT,
    error_message TEXT,
    result TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class CaseStateStore:
    """SQLite-backed case states (WAL journal, synchronous commits)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._connection.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        self._connection.close()

    def _set(self, case_id: str, status: CaseStatus, **fields: object) -> None:
        assignments = ", ".join(f"{name} = ?" for name in fields)
        extra = f", {assignments}" if assignments else ""
        self._connection.execute(
            f"UPDATE cases SET status = ?, updated_at = ?{extra} WHERE case_id = ?",
            (status.value, time.time(), *fields.values(), case_id),
        )

    def register(self, case_ids: Iterable[str]) -> None:
        """Add cases as ``pending``; cases already known keep their state."""
        now = time.time()
        self._connection.executemany(
            "INSERT OR IGNORE INTO cases (case_id, status, updated_at) VALUES (?, ?, ?)",
            [(case_id, CaseStatus.PENDING.value, now) for case_id in case_ids],
        )

    def mark_running(self, case_id: str) -> None:
        """Record that a case was handed to a worker (one more attempt)."""
        self._connection.execute(
            "UPDATE cases SET status = ?, attempts = attempts + 1, updated_at = ? "
            "WHERE case_id = ?",
            (CaseStatus.RUNNING.value, time.time(), case_id),
        )

    def mark_done(self, case_id: str, result: dict[str, object]) -> None:
        """Record a finished case and its result summary (metrics, output paths)."""
        self._set(
            case_id,
            CaseStatus.DONE,
            error_type=None,
            error_message=None,
            result=json.dumps(result, sort_keys=True),
        )

    def mark_failed(self, case_id: str, *, error_type: str, message: str) -> None:
        """Record a failed case with its typed error (message carries no PHI)."""
        self._set(case_id, CaseStatus.FAILED, error_type=error_type, error_message=message)

    def requeue_interrupted(self) -> int:
        """Turn ``running`` cases of a killed run back into ``pending``; return how many."""
        cursor = self._connection.execute(
            "UPDATE cases SET status = ? WHERE status = ?",
            (CaseStatus.PENDING.value, CaseStatus.RUNNING.value),
        )
        return cursor.rowcount

    def requeue_failed(self) -> int:
        """Turn ``failed`` cases back into ``pending`` (retry on resume); return how many."""
        cursor = self._connection.execute(
            "UPDATE cases SET status = ? WHERE status = ?",
            (CaseStatus.PENDING.value, CaseStatus.FAILED.value),
        )
        return cursor.rowcount

    def records(self, status: CaseStatus | None = None) -> list[CaseRecord]:
        """All cases (or those with ``status``), sorted by case id."""
        query = "SELECT case_id, status, attempts, error_type, error_message, result FROM cases"
        arguments: tuple[str, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            arguments = (status.value,)
        rows = self._connection.execute(query + " ORDER BY case_id", arguments).fetchall()
        return [
            CaseRecord(
                case_id=row[0],
                status=CaseStatus(row[1]),
                attempts=row[2],
                error_type=row[3],
                error_message=row[4],
                result=json.loads(row[5]) if row[5] else None,
            )
            for row in rows
        ]

    def counts(self) -> dict[CaseStatus, int]:
        """Number of cases in each status."""
        counts = dict.fromkeys(CaseStatus, 0)
        for status, number in self._connection.execute(
            "SELECT status, COUNT(*) FROM cases GROUP BY status"
        ):
            counts[CaseStatus(status)] = number
        return counts

    def get_meta(self, key: str) -> str | None:
        """A stored run-level value (e.g. the MLflow parent run id)."""
        row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Store a run-level value."""
        self._connection.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
