"""Turn one calibration's runs (benchmarks/gpu_calibrate.sh) into a rates file for `promptgd reproduce --plan`.

    python benchmarks/gpu_rates.py --runs OUT --base results/benchmarks/gpu_rates.json --out OUT/gpu_rates.json

`OUT/train_<key>/metrics.jsonl` (key as in the rates file with / written as __, e.g. train__full__long) gives a
meta-training rate: the median seconds of the outer steps after the first, per task of the step, and the peak
memory; `OUT/eval_<short|long>/summary.json` gives the evaluation rates per mode. Keys the runs did not measure keep
the base file's rate and basis. Prints a table, then one JSON line with the measured rates."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import yaml


def train_rate(run: Path, device: str) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    config = yaml.safe_load((run / "config.yaml").read_text())
    # A rate is per triple: a task of k contexts does k triples' work (reproduce/cost.py).
    batch = config["train"]["batch_size"] * config["inner"]["contexts"]
    steps = rows[1:] or rows  # the first step also builds caches and Adam's state
    seconds = statistics.median(r["seconds"] for r in steps) / batch
    return {
        "seconds": round(seconds, 4),
        "peak_gib": round(max(r["peak_mem_mb"] for r in rows) / 1024, 1),
        "basis": f"measured on {device} by benchmarks/gpu_calibrate.sh: median of {len(steps)} outer steps of "
        f"{batch} triples after the first ({run.name})",
    }


def eval_rates(run: Path, length: str, device: str) -> dict[str, dict]:
    summary = json.loads((run / "summary.json").read_text())
    return {
        f"eval/{mode}/{length}": {
            "seconds": round(seconds / summary["n"], 4),
            "peak_gib": None,
            "basis": f"measured on {device} by benchmarks/gpu_calibrate.sh: {summary['n']} triples ({run.name})",
        }
        for mode, seconds in summary["seconds"].items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out}: exists; choose another --out")
    base = json.loads(args.base.read_text())
    device = (args.runs / "device.txt").read_text().strip()
    measured = {}
    for run in sorted(args.runs.glob("train_*")):
        if (run / "metrics.jsonl").is_file():
            measured["train/" + run.name.removeprefix("train_").replace("__", "/")] = train_rate(run, device)
    for length in ("short", "long"):
        if (args.runs / f"eval_{length}" / "summary.json").is_file():
            measured.update(eval_rates(args.runs / f"eval_{length}", length, device))
    base["device"] = device
    base["rates"] = {**base["rates"], **measured}
    args.out.write_text(json.dumps(base, indent=2) + "\n")
    for key, rate in measured.items():
        print(f"{key:<32} {rate['seconds']:.4f} s  peak {rate['peak_gib']} GiB")
    print(json.dumps(measured))


if __name__ == "__main__":
    main()
