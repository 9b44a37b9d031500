"""The retention plot of stream evaluations, one curve per method.

    python experiments/retention_plot.py --metric f1 --out results/studies/stream_smollm2/retention.png \
        plain=runs/stream_val/plain_lr1e-3 sizes8=runs/stream_val/sizes8 ...

Each NAME=DIR is a `promptgd eval` directory with mode ft_stream (and ft, nc for the reference lines)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from promptgd.report.retention import retention_figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metric", default="f1")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write (a new file)")
    parser.add_argument("--title", default="Retention over a stream")
    parser.add_argument("runs", nargs="+", help="NAME=EVAL_DIR")
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out}: exists; write the plot to a new file")
    summaries = {}
    for item in args.runs:
        name, _, directory = item.partition("=")
        path = Path(directory) / "summary.json"
        if not name or not path.is_file():
            raise SystemExit(f"{item}: expected NAME=DIR with DIR/summary.json")
        summaries[name] = json.loads(path.read_text())
    retention_figure(summaries, args.metric, args.out, args.title)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
