"""A results markdown file from evaluation directories (each holding the summary.json of `promptgd eval`).

python experiments/results_table.py --title T --command "how it was made" DIR [DIR ...]
"""

import argparse
import json
from pathlib import Path

from promptgd.report.tables import mode_table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--title", required=True)
    parser.add_argument("--command", required=True, help="the command that produced the directories")
    parser.add_argument("dirs", nargs="+")
    args = parser.parse_args()
    summaries = [json.loads((Path(d) / "summary.json").read_text()) for d in args.dirs]
    rows = {
        f"{s['task']} ({Path(d).name})" if Path(d).name != s["task"] else s["task"]: s["modes"]
        for d, s in zip(args.dirs, summaries)
    }
    print(f"# {args.title}\n")
    print(f"Command: `{args.command}`\n")
    print(f"Model: `{summaries[0]['model']}`; n = {', '.join(str(s['n']) for s in summaries)} test triples.\n")
    print(
        "Accuracy = exact match of the first generated line after SQuAD normalisation; prefix = the normalised "
        "generation starts with the answer; NLL = mean nats per response token, teacher-forced.\n"
    )
    print(mode_table(rows))
    print()
    for d, s in zip(args.dirs, summaries):
        if "seconds" in s:
            print(f"- `{d}`: " + ", ".join(f"{m} {t / 60:.1f} min" for m, t in s["seconds"].items()))


if __name__ == "__main__":
    main()
