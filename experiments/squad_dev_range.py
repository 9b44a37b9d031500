"""Write one range of SQuAD dev paragraphs (data/squad.py DEV_RANGES) as a triple file for `task.name=jsonl:FILE`.

    python experiments/squad_dev_range.py confirm --out runs/confirm/squad_confirm.jsonl

Every question of each paragraph, with all its gold answers and the paragraph as `source`, in the seeded order."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from promptgd.data.squad import DEV_RANGES, dev_paragraphs
from promptgd.data.triples import write_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("range", choices=list(DEV_RANGES))
    parser.add_argument("--out", required=True, help="the JSONL to write; an existing file is refused")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        sys.exit(f"{out}: exists; choose another --out")
    paragraphs = dev_paragraphs(args.range)
    write_jsonl([t for paragraph in paragraphs for t in paragraph], out)
    print(f"{len(paragraphs)} paragraphs, {sum(map(len, paragraphs))} questions -> {out}")


if __name__ == "__main__":
    main()
