"""Batch throughput: cases/minute of `medseg run` with 1 and 2 local Dask workers.

Runs the shipped watershed nuclei pipeline over all 80 DSB2018 images (overlays off)
twice in this process, once per worker count, each in a fresh output folder, and prints
cases/minute and the scaling ratio. Cluster start-up is included (it is part of a run).

    .venv/bin/python benchmarks/batch.py [--pipeline pipelines/ct_organs.yaml]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import yaml

from medseg.core import parse_config
from medseg.runner import PipelineConfig, run_pipeline

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pipeline", type=Path, default=ROOT / "pipelines/cell_nuclei_watershed.yaml"
    )
    parser.add_argument(
        "--all-cases",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run every case of the dataset, not only the pipeline's split",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = yaml.safe_load(args.pipeline.read_text())
    if args.all_cases:
        data["cases"] = {}
    data.setdefault("export", {})["overlay_png"] = False
    config = parse_config(PipelineConfig, data, source=args.pipeline)
    rates = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            summary = run_pipeline(config, root=ROOT, out_dir=Path(tmp) / "out", workers=workers)
            seconds = time.perf_counter() - started
        rates[workers] = summary.done / seconds * 60
        print(
            f"{workers} worker(s): {summary.done} cases in {seconds:.1f} s = "
            f"{rates[workers]:.1f} cases/min ({summary.failed} failed)"
        )
    print(f"scaling 2 vs 1 worker(s): {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
