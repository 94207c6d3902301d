"""Consistent options (issue 24, item 11): -i/--input and -o/--out on every command with
the positional forms kept, --model meaning one thing, global flags after the subcommand,
and argument errors reported before torch is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medseg.cli import build_parser, main
from medseg.cli._options import merge_path_aliases
from medseg.core import ExitCode


def _parse(argv: list[str]) -> dict[str, object]:
    args = build_parser().parse_args(argv)
    merge_path_aliases(args)
    return vars(args)


@pytest.mark.parametrize(
    ("short", "long_form", "keys"),
    [
        (
            ["sam", "-i", "ct.nii.gz", "-o", "m.nii.gz", "--auto"],
            ["sam", "ct.nii.gz", "--out", "m.nii.gz", "--auto"],
            ("image", "out"),
        ),
        (
            ["infer", "--model", "nuclei", "-i", "a.png", "b.png", "-o", "pred"],
            ["infer", "--model", "nuclei", "a.png", "b.png", "--out", "pred"],
            ("inputs", "out"),
        ),
        (
            ["convert", "-i", "a", "-o", "b.nii.gz"],
            ["convert", "a", "b.nii.gz"],
            ("source", "destination"),
        ),
        (
            ["deid", "-i", "in", "-o", "out", "--key-file", "k"],
            ["deid", "in", "out", "--key-file", "k"],
            ("src", "dst"),
        ),
        (
            ["evaluate", "-i", "p", "--ref", "r", "-o", "e"],
            ["evaluate", "--pred", "p", "--ref", "r", "--out", "e"],
            ("pred", "out"),
        ),
        (["inspect", "-i", "a"], ["inspect", "a"], ("source",)),
        (["run", "p.yaml", "-o", "x"], ["run", "p.yaml", "--out", "x"], ("out",)),
        (["train", "c.yaml", "-o", "x"], ["train", "c.yaml", "--out", "x"], ("out",)),
        (
            ["export", "seg", "--source", "s", "--mask", "m", "-o", "x.dcm"],
            ["export", "seg", "--source", "s", "--mask", "m", "--out", "x.dcm"],
            ("out",),
        ),
    ],
)
def test_short_options_and_the_older_forms_agree(
    short: list[str], long_form: list[str], keys: tuple[str, ...]
) -> None:
    new, old = _parse(short), _parse(long_form)
    for key in keys:
        assert new[key] == old[key], key
        assert new[key] not in (None, [])


def test_a_path_given_both_ways_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parse(["convert", "a", "-i", "b", "-o", "c.nii.gz"])
    assert info.value.code == 2
    assert "-i/--input" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_flags_work_after_the_subcommand(
    where: str, repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = str(repo_root / "pipelines" / "demo_ct_liver.yaml")
    flags = ["--log-level", "error", "--quiet"]
    argv = [*flags, "config", "validate", pipeline]
    if where == "after":
        argv = ["config", "validate", pipeline, *flags]
    assert main(argv) == ExitCode.OK
    args = build_parser().parse_args(argv)
    assert args.log_level == "error"
    assert args.quiet is True


def test_evaluate_model_is_renamed_run_label_with_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _parse(["evaluate", "-i", "p", "-o", "e", "--run-label", "unet"])["run_label"] == "unet"
    assert _parse(["evaluate", "-i", "p", "-o", "e", "--model", "unet"])["run_label"] == "unet"
    assert "--run-label" in capsys.readouterr().err
    assert (
        "--model"
        not in build_parser()
        ._subparsers._group_actions[0]
        .choices[  # type: ignore[union-attr]
            "evaluate"
        ]
        .format_help()
    )


_PROBE = """
import json, sys, time
start = time.perf_counter()
from medseg.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "torch": "torch" in sys.modules,
                  "monai": "monai" in sys.modules, "s": time.perf_counter() - start}))
"""


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["infer", "--model", "nuclei", "-i", "{t}/missing.png", "-o", "{t}/o"], ExitCode.INPUT),
        (
            ["infer", "--model", "nuclei", "-i", "{img}", "-o", "{t}/a.png", "-i", "{img2}"],
            ExitCode.CONFIG,
        ),
        (["infer", "--model", "nuclei", "-i", "{t}/*.png", "-o", "{t}/o"], ExitCode.INPUT),
        (["sam", "-i", "{ct}", "-o", "{t}/mask.png", "--box", "1,1,0,9,9,2"], ExitCode.CONFIG),
        (["sam", "-i", "{ct}", "-o", "{t}/mask.nii.gz"], ExitCode.CONFIG),  # no prompt
        (["sam", "-i", "{t}/missing.nii.gz", "-o", "{t}/m.nii.gz", "--auto"], ExitCode.INPUT),
    ],
)
def test_argument_errors_come_before_torch_is_imported(
    argv: list[str], code: int, repo_root: Path, tmp_path: Path
) -> None:
    values = {
        "t": str(tmp_path),
        "ct": str(repo_root / "data/ct_totalsegmentator/example_ct_sm.nii.gz"),
        "img": str(repo_root / "data/cells_dsb2018/test/images/06350c7cc618be44.png"),
        "img2": str(repo_root / "data/cells_dsb2018/test/images/13f2bec0a24c7034.png"),
    }
    argv = [a.format(**values) for a in argv]
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, check=False
    )
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["code"] == code, result.stderr
    assert probe["torch"] is False
    assert probe["monai"] is False
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
