"""Wall seconds of `promptgd absorb` on a note, as a user runs it: a fresh process each time, imports, model load,
the update and the save included, warm file cache (one untimed run first), median of `--repeats`.

    python benchmarks/absorb_wall.py --model packaged:smollm2-135m-absorber --out results/benchmarks/bench_absorb_wall

The note is `--note FILE`, or by default a ~200-token note of invented facts (NOTE below). Take it on an idle machine:
another job's threads stall these many times over. Prints a table, then, as its last line, one JSON object with
`seconds` (each run), `median_seconds` and the note's `tokens`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from promptgd.run_dir import json_line, write_json

NOTE = (
    "Project Heron status, week 12. The Lisbon office moved to the fourth floor of the Ribeira building on 3 March; "
    "the old rooms on Rua Augusta close at the end of the month. Marta Quental now leads the sensor team, taking over "
    "from Idris Okafor, who returns to the firmware group. The field trial in Porto found that the humidity probes "
    "drift by about 2 percent after ten days, so the calibration interval is cut from fourteen to seven days. The "
    "next board review is on 18 April at 10:00, and the budget request for the second trial is 240,000 euros. The "
    "supplier for the enclosures is now Cortex Plastics in Braga; the previous supplier, Vela, missed two deliveries. "
    "Questions about the trial go to heron-trial@example.org, and the shared drive folder is Heron/Trial-2."
)


def one_absorb(model: str, note: Path, out: Path, device: str) -> float:
    """Seconds of one `promptgd absorb` in a new process, until it exits."""
    command = [sys.executable, "-m", "promptgd", "absorb", "--model", model, "--context", str(note)]
    start = time.perf_counter()
    done = subprocess.run([*command, "--device", device, "--out", str(out)], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="packaged:smollm2-135m")
    parser.add_argument("--note", type=Path, help="the text to absorb (default: a ~200-token note)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", required=True, help="directory for absorb_wall.json")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        note = args.note or Path(tmp) / "note.txt"
        if args.note is None:
            note.write_text(NOTE)
        from promptgd.models.loading import load_model

        _, tokenizer = load_model(args.model, device="cpu")  # builds any cache the first run would otherwise pay
        tokens = len(tokenizer(note.read_text())["input_ids"])
        one_absorb(args.model, note, Path(tmp) / "warm", args.device)  # the file cache, as a user's second run
        seconds = []
        for run in range(args.repeats):
            seconds.append(one_absorb(args.model, note, Path(tmp) / f"run{run}", args.device))
            shutil.rmtree(Path(tmp) / f"run{run}")
    figures = {"model": args.model, "tokens": tokens, "seconds": seconds, "median_seconds": statistics.median(seconds)}
    print("| model | note tokens | runs | median wall seconds (fresh process, save included) |")
    print("|---|---:|---:|---:|")
    print(f"| {args.model} | {tokens} | {len(seconds)} | {figures['median_seconds']:.2f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "absorb_wall.json", figures)
    print(json_line(figures), end="")


if __name__ == "__main__":
    main()
