"""``channel_model``: a multi-channel network (e.g. the shipped ``brain-tumour``: FLAIR + T1c)
whose checkpoint names its input channels; its class ids are the dataset's label ids."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import Field

from medseg.core import ChannelError, ConfigModel
from medseg.inference import ComputePrecision, predict_channel_volume, resolve_infer_config
from medseg.io import Volume, check_channel_names, resample_to_grid
from medseg.models import load_checkpoint
from medseg.segment._base import CaseImages, MapKind, Segmentation, Segmenter, SegmenterSpec
from medseg.segment._checkpoint_semantic import resolve_pipeline_model


class ChannelModelConfig(ConfigModel):
    """A channel model run on a pipeline case.

    Attributes
    ----------
    model
        Checkpoint file, run folder or shipped model name (default ``brain-tumour``).
    channels
        Model channel name → the case's image that feeds it: ``image`` (the manifest's
        image) or a name of its ``additional_images``. Default: ``flair`` ← ``image``,
        ``t1c`` ← ``t1c`` (the BraTS manifest).
    mirror
        Mirror test-time augmentation (8 passes); null: the model's own default
        (``Checkpoint.inference_defaults``, as ``medseg infer`` does), which also supplies
        the region decision and component filter the shipped model was chosen with.
    largest_component
        Keep the largest connected foreground component only.
    """

    model: str = Field(default="brain-tumour", min_length=1)
    channels: dict[str, str] = Field(default_factory=lambda: {"flair": "image", "t1c": "t1c"})
    mirror: bool | None = None
    largest_component: bool = True
    precision: ComputePrecision = ComputePrecision.BF16


def stack_case_channels(
    case: CaseImages, channels: Mapping[str, str], expected: list[str]
) -> Volume:
    """The case's images ``(X, Y, Z, C)`` in the model's channel order, on the image grid."""
    check_channel_names(list(channels), expected=expected)
    arrays = []
    for name in expected:
        source = channels[name]
        if source == "image":
            volume = case.image
        elif source in case.channels:
            volume = resample_to_grid(case.channels[source], case.image)
        else:
            raise ChannelError(
                f"channel {name} reads the case's image {source!r}, which this case lacks "
                f"(it has: image, {', '.join(sorted(case.channels)) or 'no others'})",
                expected=expected,
                case_id=case.case_id,
            )
        arrays.append(np.asarray(volume.array, dtype=np.float32))
    return Volume(array=np.stack(arrays, axis=-1), affine=case.image.affine.copy())


class ChannelModelSegmenter(Segmenter):
    """The ``channel_model`` method: a semantic label map in the dataset's label ids."""

    def __init__(self, config: ChannelModelConfig) -> None:
        self.config = config

    def segment(self, case: CaseImages) -> Segmentation:
        checkpoint = load_checkpoint(resolve_pipeline_model(self.config.model, root=case.root))
        volume = stack_case_channels(case, self.config.channels, list(checkpoint.plans.image_keys))
        settings: dict[str, object] = {"precision": self.config.precision}
        if self.config.mirror is not None:
            settings["mirror"] = self.config.mirror
        infer = resolve_infer_config(checkpoint, settings)
        prediction = predict_channel_volume(
            checkpoint,
            volume,
            config=infer,
            largest_component=self.config.largest_component,
            case_id=case.case_id,
        )
        labels = prediction.labels.with_array(np.asarray(prediction.labels.array))
        present = {int(v) for v in np.unique(labels.array)} - {0}
        names = {**checkpoint.label_names, **dict(case.labels)}
        structures = {i: names.get(i, f"label_{i}") for i in sorted(present)}
        return Segmentation(labels=labels, kind=MapKind.SEMANTIC, structures=structures)


SPEC = SegmenterSpec(
    method="channel_model",
    section="channel_model",
    config_type=ChannelModelConfig,
    build=ChannelModelSegmenter,  # type: ignore[arg-type]
    default_settings=True,
)
