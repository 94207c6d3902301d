from __future__ import annotations

import logging

from medseg.core import configure_logging


def test_highdicom_source_uids_stay_out_of_info_logs() -> None:
    """highdicom logs the source's SOP Instance UIDs at INFO (issue 17, item 9)."""
    configure_logging("info")
    assert logging.getLogger("highdicom").getEffectiveLevel() >= logging.WARNING
    configure_logging("debug")
    assert logging.getLogger("highdicom").getEffectiveLevel() == logging.DEBUG
    configure_logging("info")
