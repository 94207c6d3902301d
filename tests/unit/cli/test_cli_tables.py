"""Text tables laid out by rich (issue 24, library replacements): aligned, one line per
row in a pipe however long the cells."""

from __future__ import annotations

import pytest

from medseg.cli._tables import print_table


def test_a_piped_table_keeps_one_line_per_row_and_aligned_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [("case_01", "InputError", "x" * 150), ("a_much_longer_case_id", "ModelError", "y")]
    print_table(("case", "error", "message"), rows)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    body = [line for line in lines if not set(line.strip()) <= {"─", "━", " "}]
    assert len(body) == 3  # header + 2 rows, nothing wrapped at 80 columns
    starts = {
        line.index(word)
        for line, word in zip(body, ("error", "InputError", "ModelError"), strict=True)
    }
    assert len(starts) == 1  # the second column starts at one position on every line
