"""Sliding-window inference: medseg's engine vs ``monai.inferers.sliding_window_inference``.

Same network (MONAI UNet, channels 16-256, 2 residual units, 4.8 M parameters, seeded
weights), same volume (1×1×256×256×160, seeded normal noise), same settings (ROI 96³,
overlap 0.5, Gaussian blending σ = 0.125·ROI, sw batch 2). Each engine runs in a fresh
subprocess so its peak RSS is its own; each child times the best of ``--repeats`` runs
after a one-window warm-up, in wall and process CPU seconds (CPU seconds are steadier on a
shared machine). "run RSS" is the peak minus the RSS before the timed runs: the engine's
own working memory, without the imports (medseg's package imports SAM's modules too). The
parent checks that the fp32 probabilities agree (max |Δp| ≤ 1e-3) and prints voxels/s, peak
RSS and the speed ratios.

    python benchmarks/sliding_window.py                 # fp32 + bf16, 2 repeats
    python benchmarks/sliding_window.py --repeats 1 --shape 128 128 80   # quick look
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROI = (96, 96, 96)
OVERLAP = 0.5


def _network():
    import torch
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    net = UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=2,
        channels=(16, 32, 64, 128, 256),
        strides=(2, 2, 2, 2),
        num_res_units=2,
    )
    return net.eval()


def _volume(shape: tuple[int, ...]):
    import torch

    rng = np.random.default_rng(0)
    return torch.tensor(rng.normal(size=(1, 1, *shape)), dtype=torch.float32)


def _child(args: argparse.Namespace) -> None:
    import torch

    net = _network()
    volume = _volume(tuple(args.shape))
    if args.engine == "monai":
        from monai.inferers import sliding_window_inference

        def run(image):
            with torch.no_grad():
                if args.precision == "bf16":
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        logits = sliding_window_inference(
                            image, ROI, args.sw_batch, net, overlap=OVERLAP, mode="gaussian"
                        )
                else:
                    logits = sliding_window_inference(
                        image, ROI, args.sw_batch, net, overlap=OVERLAP, mode="gaussian"
                    )
                return torch.softmax(logits.float(), dim=1)[0]
    else:
        from medseg.inference import SlidingWindowConfig, predict_sliding_window

        config = SlidingWindowConfig(
            roi_size=list(ROI),
            overlap=OVERLAP,
            sw_batch_size=args.sw_batch,
            precision=args.precision,
            channels_last=args.channels_last,
        )

        def run(image):
            return predict_sliding_window(net, image[0], config=config)

    run(volume[..., : ROI[0], : ROI[1], : ROI[2]].contiguous())  # warm-up: one window
    import psutil

    rss_before_mb = psutil.Process().memory_info().rss / 2**20  # imports, network, input
    seconds, cpu_seconds = [], []
    for _ in range(args.repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        probabilities = run(volume)
        seconds.append(time.perf_counter() - started)
        cpu_seconds.append(time.process_time() - cpu_started)
    np.save(args.save, probabilities.numpy().astype(np.float32))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": min(seconds),
                "cpu_seconds": min(cpu_seconds),
                "all_seconds": seconds,
                "peak_rss_mb": peak_mb,
                "run_rss_mb": peak_mb - rss_before_mb,
            }
        )
    )


def _spawn(args: argparse.Namespace, engine: str, precision: str, save: Path) -> dict:
    command = [
        sys.executable, __file__, "--child", "--engine", engine, "--precision", precision,
        "--repeats", str(args.repeats), "--sw-batch", str(args.sw_batch),
        "--save", str(save), "--shape", *map(str, args.shape),
    ]  # fmt: skip
    if args.channels_last:
        command.append("--channels-last")
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=["monai", "medseg"], help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--shape", type=int, nargs=3, default=[256, 256, 160])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sw-batch", type=int, default=2)
    parser.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=False,
        help="medseg: channels-last memory format (default off)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    voxels = int(np.prod(args.shape))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        results = {}
        for engine, precision in (
            ("monai", "fp32"), ("medseg", "fp32"), ("monai", "bf16"), ("medseg", "bf16")
        ):  # fmt: skip
            save = tmp_path / f"{engine}_{precision}.npy"
            results[(engine, precision)] = _spawn(args, engine, precision, save)
        reference = np.load(tmp_path / "monai_fp32.npy")
        fp32_diff = float(np.abs(np.load(tmp_path / "medseg_fp32.npy") - reference).max())
        argmax = reference.argmax(0)
        agreement = {
            key: float((np.load(tmp_path / f"{key[0]}_{key[1]}.npy").argmax(0) == argmax).mean())
            for key in results
        }
    print(
        f"volume 1x1x{'x'.join(map(str, args.shape))}, ROI {ROI}, overlap {OVERLAP}, "
        f"gaussian, sw batch {args.sw_batch}, UNet 4.8 M params, best of {args.repeats}"
    )
    print(
        f"{'engine':<16}{'wall s':>9}{'CPU s':>9}{'Mvox/s':>9}{'peak RSS MB':>13}"
        f"{'run RSS MB':>12}{'argmax agree':>14}"
    )
    for (engine, precision), r in results.items():
        print(
            f"{engine + ' ' + precision:<16}{r['seconds']:>9.2f}{r['cpu_seconds']:>9.2f}"
            f"{voxels / r['seconds'] / 1e6:>9.2f}{r['peak_rss_mb']:>13.0f}"
            f"{r['run_rss_mb']:>12.0f}"
            f"{agreement[(engine, precision)]:>14.4f}"
        )
    ok = "OK" if fp32_diff <= 1e-3 else "FAIL"
    print(f"fp32 max |p_medseg - p_monai| = {fp32_diff:.2e} ({ok}, limit 1e-3)")
    for measure in ("seconds", "cpu_seconds"):
        base = results[("monai", "fp32")][measure]
        name = "wall" if measure == "seconds" else "CPU"
        for key in (("medseg", "fp32"), ("monai", "bf16"), ("medseg", "bf16")):
            ratio = base / results[key][measure]
            print(f"{name} speed ratio {key[0]} {key[1]} vs monai fp32: {ratio:.2f}x")
        ratio = results[("monai", "bf16")][measure] / results[("medseg", "bf16")][measure]
        print(f"{name} speed ratio medseg bf16 vs monai bf16: {ratio:.2f}x")
    if fp32_diff > 1e-3:
        sys.exit(1)


if __name__ == "__main__":
    main()
