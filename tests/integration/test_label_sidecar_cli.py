"""Issue 24 item 8: names travel with the mask. A label sidecar is written beside the masks
medseg writes; ``evaluate`` scores the structures a prediction claims, ``export`` names and
codes segments from it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medseg.cli import main
from medseg.core import ExitCode, load_config
from medseg.export import describe_labels
from medseg.io import Case, Split, read_image, reorient_like, write_label_map
from medseg.runner import PipelineConfig
from medseg.runner._stages import CaseContext, export

pytestmark = pytest.mark.integration

LIVER = 5


def _metric_labels(metrics_csv: Path) -> dict[str, float]:
    with metrics_csv.open() as handle:
        return {
            r["label"]: float(r["value"]) for r in csv.DictReader(handle) if r["metric"] == "dice"
        }


def test_evaluate_scores_the_structures_the_prediction_claims(
    repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref_path = repo_root / "data/ct_totalsegmentator/example_seg.nii.gz"
    reference = read_image(ref_path)
    assert len(np.unique(reference.array)) - 1 == 41  # a 41-label reference
    liver = reference.with_array((reference.array == LIVER).astype(np.uint8) * LIVER)
    pred = write_label_map(
        liver, tmp_path / "pred.nii.gz", entries=describe_labels({LIVER: "liver"})
    )
    args = ["evaluate", "--pred", str(pred), "--ref", str(ref_path), "--no-tracking"]
    assert main([*args, "--out", str(tmp_path / "eval")]) == ExitCode.OK
    assert _metric_labels(tmp_path / "eval" / "metrics.csv") == {"liver": 1.0}
    assert "the 1 structure(s) the prediction claims: liver" in capsys.readouterr().out
    # without the sidecar every reference label is scored (40 of them as misses)
    (tmp_path / "pred.labels.json").unlink()
    assert main([*args, "--out", str(tmp_path / "eval2")]) == ExitCode.OK
    assert len(_metric_labels(tmp_path / "eval2" / "metrics.csv")) == 41


@pytest.fixture
def demo_mask(repo_root: Path, ct_dicom_dir: Path, tmp_path: Path) -> Path:
    """The demo's mask as the runner writes it (liver from the pipeline's structures)."""
    config = load_config(repo_root / "pipelines/demo_ct_liver.yaml", PipelineConfig)
    config = config.model_copy(
        update={"export": config.export.model_copy(update={"overlay_png": False})}
    )
    image = read_image(ct_dicom_dir)
    reference = reorient_like(
        read_image(repo_root / "data/ct_totalsegmentator/example_seg_dicom.nii.gz"), image
    )
    prediction = reference.with_array((reference.array == LIVER).astype(np.uint8) * LIVER)
    out = tmp_path / "case"
    out.mkdir()
    context = CaseContext(
        case=Case(id="ct_dicom_01", image="unused", split=Split.DEMO),
        labels={LIVER: "liver", 1: "spleen"},
        root=repo_root,
        out_dir=out,
        image=image,
        prediction=prediction,
        structures={LIVER: "liver"},
    )
    export(context, config)
    assert "mask.labels.json" in context.outputs
    return out / "mask.nii.gz"


def test_run_writes_a_coded_sidecar(demo_mask: Path) -> None:
    (entry,) = json.loads(demo_mask.with_name("mask.labels.json").read_text())["labels"]
    assert entry["label"] == LIVER
    assert entry["name"] == "liver"
    assert entry["type"] == {"value": "10200004", "scheme": "SCT", "meaning": "Liver"}


def test_exported_seg_names_and_codes_the_demo_segment(
    demo_mask: Path, ct_dicom_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "seg.dcm"
    argv = ["export", "seg", "--source", str(ct_dicom_dir), "--mask", str(demo_mask)]
    assert main([*argv, "--out", str(out), "--complete-uids"]) == ExitCode.OK
    (segment,) = pydicom.dcmread(out).SegmentSequence
    assert segment.SegmentLabel == "liver"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"


def test_claims_are_matched_to_the_reference_by_name(
    repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sam --text liver`` writes the liver as 1; TotalSegmentator's liver is 5."""
    reference = read_image(repo_root / "data/ct_totalsegmentator/example_seg.nii.gz")
    ref_path = write_label_map(
        reference,
        tmp_path / "ref.nii.gz",
        entries=describe_labels({1: "spleen", LIVER: "liver"}),
    )
    liver_as_1 = reference.with_array((reference.array == LIVER).astype(np.uint8))
    pred = write_label_map(
        liver_as_1, tmp_path / "pred.nii.gz", entries=describe_labels({1: "liver"})
    )
    args = ["evaluate", "--pred", str(pred), "--ref", str(ref_path), "--no-tracking"]
    assert main([*args, "--out", str(tmp_path / "eval")]) == ExitCode.OK
    assert _metric_labels(tmp_path / "eval" / "metrics.csv") == {"liver": 1.0}
    assert "matched by name: liver 1 -> reference 5" in capsys.readouterr().out
