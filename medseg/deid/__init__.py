"""De-identification of DICOM and NIfTI (PS3.15 Annex E Basic Profile and all options).

No torch here. The profile table (Table E.1-1) is package data, options are switches in a
validated :class:`DeidConfig`, replacements are keyed (HMAC-SHA256) so they are consistent
across files, series and runs, and :func:`check_for_leaks` proves nothing identifying
survived.
"""

from __future__ import annotations

from medseg.deid._check import Leak, LeakReport, check_for_leaks
from medseg.deid._config import (
    DateShift,
    DeidConfig,
    PixelRegion,
    PixelRule,
    PixelRules,
    SafePrivateAttribute,
    resolve_tag_name,
)
from medseg.deid._dicomio import find_pixel_data_problem
from medseg.deid._engine import Deidentifier, DeidResult
from medseg.deid._iod import find_attribute_types
from medseg.deid._keys import DeidKey, load_deid_key
from medseg.deid._nifti import scrub_nifti
from medseg.deid._pixels import (
    BurnedInRefusedError,
    blank_regions,
    find_burned_in_risk,
    match_pixel_rule,
)
from medseg.deid._table import (
    STANDARD_EDITION,
    Action,
    ActionTable,
    DeidOption,
    TableRow,
    build_action_table,
    load_profile_table,
    resolve_combined_action,
)
from medseg.deid._tree import (
    AUDIT_NAME,
    FAILURE_STATUSES,
    DeidRunSummary,
    FileStatus,
    check_output_locations,
    deidentify_tree,
)
from medseg.deid._values import shift_date, shift_datetime

__all__ = [
    "AUDIT_NAME",
    "FAILURE_STATUSES",
    "STANDARD_EDITION",
    "Action",
    "ActionTable",
    "BurnedInRefusedError",
    "DateShift",
    "DeidConfig",
    "DeidKey",
    "DeidOption",
    "DeidResult",
    "DeidRunSummary",
    "Deidentifier",
    "FileStatus",
    "Leak",
    "LeakReport",
    "PixelRegion",
    "PixelRule",
    "PixelRules",
    "SafePrivateAttribute",
    "TableRow",
    "blank_regions",
    "build_action_table",
    "check_for_leaks",
    "check_output_locations",
    "deidentify_tree",
    "find_attribute_types",
    "find_burned_in_risk",
    "find_pixel_data_problem",
    "load_deid_key",
    "load_profile_table",
    "match_pixel_rule",
    "resolve_combined_action",
    "resolve_tag_name",
    "scrub_nifti",
    "shift_date",
    "shift_datetime",
]
