"""Multi-channel model: tiny train → ``medseg infer --channel`` on the bundled BraTS case."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli import main
from medseg.core import ChannelError, ExitCode, load_config
from medseg.evaluation import BRATS_REGIONS, compute_region_metrics
from medseg.inference import (
    InferConfig,
    decide_nested_regions,
    keep_foreground_components,
    keep_largest_foreground,
    parse_channel_arguments,
    predict_channel_volume,
)
from medseg.io import read_channels, read_image
from medseg.models import (
    load_checkpoint,
    resolve_model_path,
    save_checkpoint,
    shipped_model_card,
)
from medseg.runner import PipelineConfig, run_pipeline
from medseg.training import (
    ChannelCase,
    ChannelTrainConfig,
    build_channel_plans,
    prepare_case,
    train_channel_model,
)

pytestmark = pytest.mark.integration

CASE = "data/tumor_brats2015/brats2015_brats_2013_pat0001_1"


@pytest.fixture(scope="module")
def case_files(repo_root: Path) -> dict[str, Path]:
    folder = repo_root / CASE
    return {
        "flair": folder / "Flair_subtrMeanDivStd.nii.gz",
        "t1c": folder / "T1c_subtrMeanDivStd.nii.gz",
        "label": folder / "OTMultiClass.nii.gz",
    }


@pytest.fixture(scope="module")
def tiny_checkpoint(case_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = ChannelTrainConfig(
        channels=["flair", "t1c"],
        labels={1: "necrotic_core", 2: "oedema", 4: "enhancing_tumour"},
        label_map={3: 1},
        spacing_mm=8.0,
        patch_size=[16, 16, 16],
        features=4,
        depth=2,
        cpu_seconds=2.0,
        batch_size=2,
    )
    plans = build_channel_plans(config)
    case = ChannelCase(
        case_id="brats2013_pat0001",
        channels={"flair": case_files["flair"], "t1c": case_files["t1c"]},
        label=case_files["label"],
    )
    prepared = prepare_case(case, plans=plans, label_map=config.label_map)
    # 8 mm, cropped to the brain: the labels are the mapped BraTS classes
    assert prepared.image.shape[0] == 2
    assert set(np.unique(prepared.label).tolist()) <= {0, 1, 2, 4}
    assert prepared.label.any()
    result = train_channel_model([prepared], config=config, plans=plans)
    assert result.steps >= 1
    assert np.isfinite(result.final_loss)
    path = tmp_path_factory.mktemp("tiny_tumour") / "checkpoint.pt"
    save_checkpoint(result.checkpoint, path)
    return path


def test_checkpoint_names_its_channels(tiny_checkpoint: Path):
    checkpoint = load_checkpoint(tiny_checkpoint)
    assert checkpoint.plans.image_keys == ["flair", "t1c"]
    assert checkpoint.plans.in_channels == 2
    assert checkpoint.label_names == {1: "necrotic_core", 2: "oedema", 4: "enhancing_tumour"}


def test_infer_channels_writes_labels_on_the_flair_grid(
    tiny_checkpoint: Path, case_files: dict[str, Path], tmp_path: Path
):
    code = main(
        [
            "infer",
            "--model",
            str(tiny_checkpoint),
            "--channel",
            f"t1c={case_files['t1c']}",
            "--channel",
            f"flair={case_files['flair']}",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == ExitCode.OK
    written = nib.load(tmp_path / "Flair_subtrMeanDivStd_labels.nii.gz")
    flair = nib.load(case_files["flair"])
    assert written.shape == flair.shape
    np.testing.assert_allclose(written.affine, flair.affine, atol=1e-5)
    assert set(np.unique(np.asarray(written.dataobj)).tolist()) <= {0, 1, 2, 4}


def test_channel_on_another_grid_is_resampled(
    tiny_checkpoint: Path, case_files: dict[str, Path], tmp_path: Path
):
    t1c = nib.load(case_files["t1c"])
    coarse = np.asarray(t1c.dataobj, dtype=np.float32)[::2, ::2, ::2]
    affine = t1c.affine.copy()
    affine[:3, :3] *= 2
    nib.save(nib.Nifti1Image(coarse, affine), tmp_path / "t1c_2mm.nii.gz")
    out = tmp_path / "out"
    flair_arg = f"flair={case_files['flair']}"
    t1c_arg = f"t1c={tmp_path / 't1c_2mm.nii.gz'}"
    args = ["infer", "--model", str(tiny_checkpoint), "--channel", flair_arg, "--channel", t1c_arg]
    assert main([*args, "--out", str(out)]) == ExitCode.OK
    written = read_image(out / "Flair_subtrMeanDivStd_labels.nii.gz")
    assert written.spatial_shape == nib.load(case_files["flair"]).shape


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        (["flair"], "missing t1c"),
        (["flair", "t1c", "t2"], "unexpected t2"),
    ],
)
def test_missing_or_extra_channel_is_an_input_error(
    tiny_checkpoint: Path,
    case_files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    channels: list[str],
    message: str,
):
    files = {**case_files, "t2": case_files["t1c"]}
    args = ["infer", "--model", str(tiny_checkpoint), "--out", str(tmp_path)]
    for name in channels:
        args += ["--channel", f"{name}={files[name]}"]
    assert main(args) == ExitCode.INPUT
    err = capsys.readouterr().err
    assert "expects channels flair, t1c" in err
    assert message in err
    assert not list(tmp_path.glob("*.nii.gz"))


def test_positional_input_to_a_channel_model_names_the_channels(
    tiny_checkpoint: Path, case_files: dict[str, Path], tmp_path: Path, capsys
):
    args = ["infer", "--model", str(tiny_checkpoint), str(case_files["flair"])]
    assert main([*args, "--out", str(tmp_path)]) == ExitCode.INPUT
    assert "--channel NAME=FILE" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["flair", "=x.nii.gz", "flair="])
def test_bad_channel_argument(value: str):
    with pytest.raises(ChannelError, match="NAME=FILE"):
        parse_channel_arguments([value])


def test_repeated_channel_argument():
    with pytest.raises(ChannelError, match="given twice"):
        parse_channel_arguments(["flair=a.nii.gz", "flair=b.nii.gz"])


def test_keep_largest_foreground_keeps_one_component_with_its_labels():
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[1:5, 1:5, 1:5] = 2
    labels[2:4, 2:4, 2:4] = 4  # inside the big component: kept with its label
    labels[7:9, 7:9, 7:9] = 1  # a separate small component: removed
    out = keep_largest_foreground(labels)
    assert (out[7:9, 7:9, 7:9] == 0).all()
    np.testing.assert_array_equal(out[:6, :6, :6], labels[:6, :6, :6])
    assert InferConfig().mirror is False


def test_shipped_model_on_its_held_out_case(
    case_files: dict[str, Path], tmp_path: Path, repo_root: Path
):
    card = shipped_model_card("brain-tumour")
    subset = card["evaluation_subset"]
    assert subset["case"] not in card["training"]["cases"]
    assert load_checkpoint(resolve_model_path("brain-tumour")).plans.image_keys == ["flair", "t1c"]
    args = ["infer", "--model", "brain-tumour", "--out", str(tmp_path)]
    args += ["--channel", f"flair={case_files['flair']}", "--channel", f"t1c={case_files['t1c']}"]
    assert main(args) == ExitCode.OK
    labels = np.asarray(read_image(tmp_path / "Flair_subtrMeanDivStd_labels.nii.gz").array)
    reference = np.rint(np.asarray(read_image(case_files["label"]).array)).astype(np.uint8)
    metrics = compute_region_metrics(
        labels.astype(np.uint8), reference, regions=BRATS_REGIONS, spacing_mm=(1.0, 1.0, 1.0)
    )
    for region, dice in subset["dice"].items():
        assert metrics[region].dice == pytest.approx(dice, abs=0.01), region


def test_region_decision_keeps_probabilities_on_the_flair_grid(
    tiny_checkpoint: Path, case_files: dict[str, Path]
):
    checkpoint = load_checkpoint(tiny_checkpoint)
    volume = read_channels(
        {"flair": case_files["flair"], "t1c": case_files["t1c"]}, expected=["flair", "t1c"]
    )
    regions = [{"labels": [1, 2, 4], "label": 2}, {"labels": [1, 4], "label": 1}]
    config = InferConfig(save_probabilities=True, regions=regions, min_component_fraction=0.1)
    prediction = predict_channel_volume(checkpoint, volume, config=config, largest_component=True)
    assert prediction.probabilities is not None
    probs = np.asarray(prediction.probabilities.array, dtype=np.float32)
    assert probs.shape == (*volume.spatial_shape, 5)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=0.01)
    labels = np.asarray(prediction.labels.array)
    np.testing.assert_array_equal(
        labels > 0,
        keep_foreground_components(decide_nested_regions(probs, regions), min_fraction=0.1) > 0,
    )


@pytest.mark.slow
def test_tumour_pipeline_runs_the_shipped_model(repo_root: Path, tmp_path: Path):
    config = load_config(repo_root / "pipelines/tumour.yaml", PipelineConfig)
    assert config.segment.method.value == "channel_model"
    data = config.model_dump(mode="json")
    config = PipelineConfig.model_validate({**data, "stages": ["ingest", "segment", "evaluate"]})
    run_pipeline(config, root=repo_root, out_dir=tmp_path, workers=0)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["done"] == 1, summary["failures"]
    metrics = summary["cases"]["brats2013_pat0001"]["metrics"]
    expected = shipped_model_card("brain-tumour")["evaluation_subset"]["dice"]
    assert metrics["dice_whole_tumour"] == pytest.approx(expected["whole_tumour"], abs=0.02)
