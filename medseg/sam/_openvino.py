"""SAM image encoders run by OpenVINO on the CPU.

The LiteMedSAM encoder (TinyViT, 75 GFLOP per 256² slice) reaches only about a fifth of the
CPU's fp32 matmul rate in eager PyTorch, and bf16 autocast does not reach the AMX units. OpenVINO
runs the same graph with fused kernels: measured here 2.5× faster than eager PyTorch in fp32 and
6.2× in bf16 (``benchmarks/sam_encoder.py``). The network is converted once from the loaded
PyTorch module (``openvino.convert_model``, no ONNX step) and the OpenVINO IR is cached on disk,
keyed by the weights' SHA-256, the input size and the OpenVINO version.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medseg.core import ModelError

logger = logging.getLogger(__name__)


class EncoderBackend(str, enum.Enum):
    """What runs a SAM image encoder.

    ``auto``: OpenVINO on the CPU when it is installed, PyTorch otherwise (always on CUDA).
    ``torch``: the PyTorch module as loaded. ``openvino``: OpenVINO, an error if unavailable.
    """

    AUTO = "auto"
    TORCH = "torch"
    OPENVINO = "openvino"


def openvino_available() -> bool:
    """Whether the ``openvino`` package can be imported."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def default_cache_dir() -> Path:
    """Per-user cache folder for converted encoders (``$XDG_CACHE_HOME/medseg`` or ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "medseg"


def _cached_ir_path(cache_dir: Path, *, key: str, image_size: int) -> Path:
    import openvino

    version = openvino.__version__.split("-")[0]
    return cache_dir / "openvino" / f"encoder-{key[:16]}-{image_size}px-ov{version}.xml"


def _convert_to_ir(encoder: nn.Module, *, image_size: int, destination: Path) -> None:
    """Trace ``encoder`` into an OpenVINO IR pair (.xml + .bin) written atomically."""
    import openvino

    destination.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(1, 3, image_size, image_size)
    with warnings.catch_warnings(), torch.no_grad():
        # tracing warns about Python asserts on shapes inside TinyViT; the input size is fixed
        warnings.simplefilter("ignore")
        converted = openvino.convert_model(encoder, example_input=example)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".tmp-") as tmp:
        staged = Path(tmp) / destination.name
        # full-precision weights: the fp32 path must equal PyTorch (the default halves them)
        openvino.save_model(converted, staged, compress_to_fp16=False)
        # the .bin first: a reader keys on the .xml, which appears only when both are in place
        os.replace(staged.with_suffix(".bin"), destination.with_suffix(".bin"))
        os.replace(staged, destination)


class OpenVinoImageEncoder(nn.Module):
    """Drop-in for a SAM image encoder: ``(1, 3, S, S)`` float → ``(1, 256, S/4, S/4)``.

    Runs in bf16 when called under CPU bf16 autocast (the ``--precision bf16`` path) and in
    fp32 otherwise; each precision is compiled on first use.
    """

    def __init__(self, ir_path: Path, *, threads: int) -> None:
        super().__init__()
        import openvino

        self.ir_path = ir_path
        self.threads = threads
        self._core = openvino.Core()
        self._model = self._core.read_model(ir_path)
        self._compiled: dict[str, Any] = {}

    def _request(self, hint: str) -> Any:
        if hint not in self._compiled:
            config = {
                "INFERENCE_NUM_THREADS": self.threads,
                "INFERENCE_PRECISION_HINT": hint,
                "PERFORMANCE_HINT": "LATENCY",
            }
            compiled = self._core.compile_model(self._model, "CPU", config)
            self._compiled[hint] = compiled.create_infer_request()
        return self._compiled[hint]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        bf16 = torch.is_autocast_enabled("cpu") and (
            torch.get_autocast_dtype("cpu") == torch.bfloat16
        )
        request = self._request("bf16" if bf16 else "f32")
        array = np.ascontiguousarray(image.detach().float().cpu().numpy())
        output = request.infer({0: array})[0]
        return torch.from_numpy(np.array(output, dtype=np.float32, copy=True))


def build_openvino_encoder(
    encoder: nn.Module,
    *,
    image_size: int,
    weights_key: str,
    cache_dir: Path,
    threads: int | None = None,
) -> OpenVinoImageEncoder:
    """Convert (or reuse the cached conversion of) ``encoder`` and load it into OpenVINO.

    Parameters
    ----------
    encoder
        The PyTorch image encoder with its weights loaded, in eval mode, on the CPU.
    image_size
        Side in pixels of the square input the encoder takes.
    weights_key
        Hex digest identifying the weights (the checkpoint's SHA-256): the cache key.
    cache_dir
        Folder under which ``openvino/`` holds the converted IR files.
    threads
        CPU threads OpenVINO may use; default: ``torch.get_num_threads()``.
    """
    if not openvino_available():
        raise ModelError("encoder backend 'openvino' needs the openvino package (pip install)")
    ir_path = _cached_ir_path(cache_dir, key=weights_key, image_size=image_size)
    threads = threads or torch.get_num_threads()
    if ir_path.is_file() and ir_path.with_suffix(".bin").is_file():
        try:
            return OpenVinoImageEncoder(ir_path, threads=threads)
        except RuntimeError as err:  # a damaged cache entry: convert again
            logger.warning("cached OpenVINO encoder unreadable (%s); converting again", err)
    logger.info("converting the image encoder for OpenVINO (once; cached in %s)", ir_path.parent)
    try:
        _convert_to_ir(encoder, image_size=image_size, destination=ir_path)
    except OSError as err:
        raise ModelError(
            f"cannot write the OpenVINO encoder cache ({err.strerror})", path=ir_path.parent
        ) from err
    with contextlib.suppress(OSError):
        ir_path.parent.joinpath(".gitignore").write_text("*\n")
    return OpenVinoImageEncoder(ir_path, threads=threads)
