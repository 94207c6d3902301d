"""Sliding-window inference: medseg's engine vs ``monai.inferers.sliding_window_inference``.

Same network (MONAI UNet, channels 16-256, 2 residual units, 4.8 M parameters, seeded
weights), same volume (1×1×256×256×160, seeded normal noise), same settings (ROI 96³,
overlap 0.5, Gaussian blending σ = 0.125·ROI, sw batch 2).

Speed is measured in one process, the engines interleaved round by round (the starting
engine rotates) so that load from other processes on a shared machine hits all of them
alike; each figure is the best of ``--repeats`` runs, in wall and process CPU seconds, after
a warm-up run. Rows:

- ``monai fp32`` / ``monai bf16``: MONAI's function, without / with ``torch.autocast(bf16)``
  (MONAI's default is fp32);
- ``medseg fp32`` / ``medseg bf16``: medseg's engine with that precision and its other
  defaults (layer rewrites, channels-last, retained memory on CPU);
- medseg's default (``SlidingWindowConfig`` defaults, precision ``auto``) resolves to the
  ``medseg fp32`` row on CPU (same computation), and MONAI's default is fp32, so "default vs
  default" is the fp32 ratio; it is printed as such;
- ``medseg plain fp32``: the engine's loop alone (no rewrites, no channels-last, no retained
  memory), and ``monai fp32 +retain``: MONAI inside medseg's retained-memory block — both
  to show where the speed comes from.

Peak RSS can't be told apart within one process, so each of the four main rows also runs
once in its own subprocess, which reports its peak RSS and its "run RSS" (peak minus the RSS
before the run: the engine's working memory without the imports).

    PYTHONPATH=. python benchmarks/sliding_window.py                       # full, 3 rounds
    PYTHONPATH=. python benchmarks/sliding_window.py --threads 1           # one core each
    PYTHONPATH=. python benchmarks/sliding_window.py --repeats 1 --shape 192 192 96 --no-rss
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROI = (96, 96, 96)
OVERLAP = 0.5
MAIN_ROWS = ("monai fp32", "medseg fp32", "monai bf16", "medseg bf16")
EXTRA_ROWS = ("medseg plain fp32", "monai fp32 +retain")


def net_device():
    """The device the benchmark runs on (CPU: the engines are compared on CPU)."""
    import torch

    return torch.device("cpu")


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


def _runner(name: str, net, sw_batch: int) -> Callable:
    """A function volume (1, 1, *S) → probabilities (2, *S) float32 for one row."""
    import torch

    if name.startswith("monai"):
        from monai.inferers import sliding_window_inference

        precision = "bf16" if "bf16" in name else "fp32"
        retain: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
        if name.endswith("+retain"):
            from medseg.inference import retain_freed_memory

            retain = retain_freed_memory

        def run_monai(volume):
            with torch.no_grad(), retain():
                autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
                with autocast:
                    logits = sliding_window_inference(
                        volume, ROI, sw_batch, net, overlap=OVERLAP, mode="gaussian"
                    )
                return torch.softmax(logits.float(), dim=1)[0]

        return run_monai
    from medseg.inference import SlidingWindowConfig, predict_sliding_window

    settings: dict = {"roi_size": list(ROI), "overlap": OVERLAP, "sw_batch_size": sw_batch}
    if name == "medseg plain fp32":
        settings |= {
            "precision": "fp32",
            "rewrite_layers": False,
            "channels_last": False,
            "retain_memory": False,
        }
    else:
        settings["precision"] = name.split()[-1]
    config = SlidingWindowConfig(**settings)

    def run_medseg(volume):
        return predict_sliding_window(net, volume[0], config=config)

    return run_medseg


def _peak_rss_mb() -> float:
    """This process's peak RSS (``VmHWM``; unlike ``ru_maxrss`` it is not inherited from the
    parent across ``fork``/``exec``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def _child(args: argparse.Namespace) -> None:
    """One row in a fresh process: peak RSS and run RSS of one full run."""
    import psutil

    net = _network()
    volume = _volume(tuple(args.shape))
    run = _runner(args.row, net, args.sw_batch)
    run(volume[..., : ROI[0], : ROI[1], : ROI[2]].contiguous())  # warm-up: one window
    before_mb = psutil.Process().memory_info().rss / 2**20
    started = time.perf_counter()
    run(volume)
    seconds = time.perf_counter() - started
    peak_mb = _peak_rss_mb()
    result = {"peak_rss_mb": peak_mb, "run_rss_mb": peak_mb - before_mb, "seconds": seconds}
    print(json.dumps(result))


def _spawn(args: argparse.Namespace, row: str) -> dict:
    command = [
        sys.executable, __file__, "--child", "--row", row, "--sw-batch", str(args.sw_batch),
        "--shape", *map(str, args.shape),
    ]  # fmt: skip
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _time_rows(args: argparse.Namespace, rows: list[str]) -> tuple[dict, dict]:
    import torch

    net = _network()
    volume = _volume(tuple(args.shape))
    runners = {row: _runner(row, net, args.sw_batch) for row in rows}
    outputs, wall, cpu = {}, {row: [] for row in rows}, {row: [] for row in rows}
    for row, run in runners.items():  # warm-up, and the outputs compared below
        outputs[row] = run(volume).numpy().copy()
    for round_index in range(args.repeats):
        shift = round_index % len(rows)
        for row in rows[shift:] + rows[:shift]:
            started, cpu_started = time.perf_counter(), time.process_time()
            runners[row](volume)
            wall[row].append(time.perf_counter() - started)
            cpu[row].append(time.process_time() - cpu_started)
        print(
            f"round {round_index + 1}/{args.repeats}: "
            + ", ".join(f"{row} {wall[row][-1]:.1f} s" for row in rows),
            flush=True,
        )
    del torch
    timings = {row: {"wall": wall[row], "cpu": cpu[row]} for row in rows}
    return timings, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--shape", type=int, nargs=3, default=[256, 256, 160])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--sw-batch", type=int, default=2)
    parser.add_argument("--rss", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--rss-rows", nargs="+", default=list(MAIN_ROWS), help=argparse.SUPPRESS)
    parser.add_argument(
        "--timing", action=argparse.BooleanOptionalAction, default=True, help="speed rounds"
    )
    parser.add_argument(
        "--threads", type=int, help="torch intra-op threads (default: torch's, one per core)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        _child(args)
        return

    rss = {row: _spawn(args, row) for row in args.rss_rows} if args.rss else {}
    if not args.timing:
        print(f"{'row':<20}{'peak RSS MB':>13}{'run RSS MB':>12}{'wall s (1 run)':>16}")
        for row, memory in rss.items():
            print(
                f"{row:<20}{memory['peak_rss_mb']:>13.0f}{memory['run_rss_mb']:>12.0f}"
                f"{memory['seconds']:>16.1f}"
            )
        return
    rows = list(MAIN_ROWS + EXTRA_ROWS)
    timings, outputs = _time_rows(args, rows)
    reference = outputs["monai fp32"]
    argmax = reference.argmax(0)
    voxels = int(np.prod(args.shape))
    print(
        f"\nvolume 1x1x{'x'.join(map(str, args.shape))}, ROI {ROI}, overlap {OVERLAP}, "
        f"gaussian, sw batch {args.sw_batch}, UNet 4.8 M params, {torch.get_num_threads()} "
        f"threads; best of {args.repeats} interleaved rounds"
    )
    print(
        f"{'row':<20}{'wall s':>8}{'CPU s':>8}{'Mvox/s':>8}{'peak RSS MB':>13}"
        f"{'run RSS MB':>12}{'max |dp|':>10}{'argmax agree':>14}"
    )
    summary: dict = {"shape": args.shape, "repeats": args.repeats, "rows": {}}
    for row in rows:
        best_wall, best_cpu = min(timings[row]["wall"]), min(timings[row]["cpu"])
        diff = float(np.abs(outputs[row] - reference).max())
        agree = float((outputs[row].argmax(0) == argmax).mean())
        memory = rss.get(row, {})
        peak = f"{memory['peak_rss_mb']:.0f}" if memory else "-"
        run_rss = f"{memory['run_rss_mb']:.0f}" if memory else "-"
        print(
            f"{row:<20}{best_wall:>8.2f}{best_cpu:>8.2f}{voxels / best_wall / 1e6:>8.2f}"
            f"{peak:>13}{run_rss:>12}{diff:>10.1e}{agree:>14.4f}"
        )
        summary["rows"][row] = {
            "wall_s": timings[row]["wall"],
            "cpu_s": timings[row]["cpu"],
            "max_abs_diff_vs_monai_fp32": diff,
            "argmax_agreement": agree,
            **memory,
        }
    from medseg.inference import SlidingWindowConfig, resolve_precision

    default = resolve_precision(SlidingWindowConfig(roi_size=list(ROI)).precision, net_device())
    pairs = [
        ("medseg fp32", "monai fp32"),
        ("medseg bf16", "monai bf16"),
        (f"medseg {default.value}", "monai fp32"),
        ("medseg plain fp32", "monai fp32"),
        ("medseg fp32", "monai fp32 +retain"),
    ]
    print()
    for index, (ours, theirs) in enumerate(pairs):
        if index == 2:
            print(f"default vs default (medseg auto = {default.value} on this device): ", end="")
        wall_ratio = min(timings[theirs]["wall"]) / min(timings[ours]["wall"])
        cpu_ratio = min(timings[theirs]["cpu"]) / min(timings[ours]["cpu"])
        print(f"{ours} vs {theirs}: {wall_ratio:.2f}x wall, {cpu_ratio:.2f}x CPU")
        summary[f"{ours} vs {theirs}"] = {"wall": wall_ratio, "cpu": cpu_ratio}
    fp32_diff = summary["rows"]["medseg fp32"]["max_abs_diff_vs_monai_fp32"]
    ok = "OK" if fp32_diff <= 1e-3 else "FAIL"
    print(f"fp32 max |p_medseg - p_monai| = {fp32_diff:.2e} ({ok}, limit 1e-3)")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if fp32_diff > 1e-3:
        sys.exit(1)


if __name__ == "__main__":
    main()
