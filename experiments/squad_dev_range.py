"""Write one range of SQuAD dev paragraphs (data/squad.py DEV_RANGES), or whole training paragraphs for a validation
stream (`val_stream`, data/squad.py validation_stream_paragraphs), as a triple file for `task.name=jsonl:FILE`.

    python experiments/squad_dev_range.py confirm --out runs/confirm/squad_confirm.jsonl
    python experiments/squad_dev_range.py val_stream --paragraphs 100 --out runs/stream/squad_val_stream.jsonl

Every question of each paragraph, with all its gold answers and the paragraph as `source`, in the seeded order."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from promptgd.data.squad import DEV_RANGES, dev_paragraphs, validation_stream_paragraphs
from promptgd.data.triples import write_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("range", choices=[*DEV_RANGES, "val_stream"])
    parser.add_argument("--paragraphs", type=int, default=100, help="val_stream: how many paragraphs")
    parser.add_argument("--out", required=True, help="the JSONL to write; an existing file is refused")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        sys.exit(f"{out}: exists; choose another --out")
    if args.range == "val_stream":
        paragraphs = validation_stream_paragraphs(args.paragraphs)
    else:
        paragraphs = dev_paragraphs(args.range)
    write_jsonl([t for paragraph in paragraphs for t in paragraph], out)
    print(f"{len(paragraphs)} paragraphs, {sum(map(len, paragraphs))} questions -> {out}")


if __name__ == "__main__":
    main()
