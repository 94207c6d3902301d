from __future__ import annotations

import builtins

import pytest

import medseg.core as core
from medseg.core import ExitCode, MedsegError

_DOMAIN_ERRORS = [
    (core.ConfigError, ValueError),
    (core.InputError, ValueError),
    (core.GeometryError, ValueError),
    (core.DeidError, ValueError),
    (core.ModelError, RuntimeError),
    (core.ExportError, RuntimeError),
    (core.TrackingError, RuntimeError),
    (core.IntegrityError, ValueError),
    (core.OutputExistsError, FileExistsError),
]


@pytest.mark.parametrize(("error", "builtin"), _DOMAIN_ERRORS)
def test_domain_errors_subclass_base_and_builtin(error: type, builtin: type) -> None:
    assert issubclass(error, MedsegError)
    assert issubclass(error, builtin)
    assert builtin.__name__ in dir(builtins)


def test_exit_codes_are_distinct_and_not_zero() -> None:
    codes = [error.exit_code for error, _ in _DOMAIN_ERRORS]
    assert len(set(codes)) == len(codes)
    assert ExitCode.OK not in codes
    assert ExitCode.USAGE not in codes  # argparse owns 2


def test_message_names_path_and_case() -> None:
    err = core.InputError("cannot decode pixel data", path="in/x.dcm", case_id="case_007")
    assert str(err) == "in/x.dcm, case case_007: cannot decode pixel data"
    assert err.path is not None
    assert err.path.name == "x.dcm"
