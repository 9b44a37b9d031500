"""Apply the people streams' rule on validation rows only (results/studies/stream_smollm2.md, "People"), and say why.

    python experiments/stream_people_choice.py OUT

OUT: the directory experiments/stream_people.sh fills. Prints the validation table, writes OUT/choice.args (the
chosen model, η, stream mode, the plain step's η and the fine-tuning baseline's rate, for the script's test stage),
and ends with one JSON line of the figures and the choices."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from promptgd.report.intervals import arm, bootstrap, difference, evaluation_records
from promptgd.report.retention import json_ready, share_text, stream_figures

RESOLVED = 0.10  # the smallest accuracy difference acted on: 100 validation people resolve about ±11 points, paired
PLAIN = ("1e-3", "3e-3", "1e-2")  # smallest first: a tie goes to the step that moves the model least
FINETUNE = ("1e-5", "1e-4", "1e-3")
# In order of preference among candidates within RESOLVED of the best: the preset's model before one trained for this
# (no extra training), the η it was trained for before a smaller one, one update after another (what a user whose
# texts arrive one by one can do) before updates taken at θ and summed.
CANDIDATES = (
    ("quickstart", "1e-2", "sequential"),
    ("quickstart", "1e-2", "at_theta"),
    ("quickstart", "3e-3", "sequential"),
    ("quickstart", "3e-3", "at_theta"),
    ("retention", "1e-2", "sequential"),
    ("retention", "1e-2", "at_theta"),
)


def row_name(model: str, lr: str, how: str) -> str:
    return f"val_retention_{how}" if model == "retention" else f"val_quickstart_{how}_lr{lr}"


def first_by_accuracy(out: Path, names: dict[str, str], mode: str) -> tuple[str, dict[str, float]]:
    """The first key of `names` (key -> row) whose `mode` accuracy is within RESOLVED of the best, and every key's."""
    accuracy = {key: summary(out / row)["modes"][mode]["accuracy"] for key, row in names.items()}
    best = max(accuracy.values())
    return next(key for key in names if accuracy[key] >= best - RESOLVED), accuracy


def summary(directory: Path) -> dict:
    return json.loads((directory / "summary.json").read_text())


def main() -> None:
    out = Path(sys.argv[1])
    plain_lr, plain = first_by_accuracy(out, {lr: f"val_plain_lr{lr}" for lr in PLAIN}, "ft_stream")
    finetune_lr, finetuned = first_by_accuracy(out, {lr: f"val_finetuned_lr{lr}" for lr in FINETUNE}, "finetuned")
    chosen, stream = first_by_accuracy(out, {c: row_name(*c) for c in CANDIDATES}, "ft_stream")

    prompt = summary(out / "val_base")["modes"]["prompt"]["accuracy"]
    figures = {}
    print(
        "| model | η | stream | val FT acc | val FT-stream acc | retention (95%) | first quarter | "
        "held-out NLL after/before | known facts after | Prompt after stream |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for candidate in CANDIDATES:
        f = stream_figures(out / row_name(*candidate), out / "val_base", "accuracy")
        figures["/".join(candidate)] = json_ready(f)
        mark = " (chosen)" if candidate == chosen else ""
        print(
            f"| {candidate[0]}{mark} | {candidate[1]} | {candidate[2]} | {100 * f['ft']:.1f} | "
            f"{100 * f['ft_stream']:.1f} | {share_text(f['retention'].value, f['retention'])} | "
            f"{share_text(f['first_quarter_retention'])} | {f['held_out_nll_ratio']:.3f} | "
            f"{100 * f['known_facts_after']:.0f}% | {100 * f['prompt_after_stream']:.0f}% (before {100 * prompt:.0f}%) |"
        )
    best = max(CANDIDATES, key=lambda c: stream[c])
    resolution = None
    if best != chosen:  # how well the validation people resolve the difference the tie rule set aside
        arms = {
            name: arm(evaluation_records(out / row_name(*c)), "ft_stream", "accuracy")
            for name, c in (("best", best), ("chosen", chosen))
        }
        gap = bootstrap(arms, difference("best", "chosen"))
        resolution = [gap.value, gap.low, gap.high]
        print(f"\nBest FT-stream {'/'.join(best)} over the chosen: {gap.format(100, 1)} points (paired, 95%).")
    print(
        "\nPlain step (start model) val FT-stream accuracy by η: "
        + ", ".join(f"{lr}: {100 * a:.1f}%" for lr, a in plain.items())
        + f"; chosen η {plain_lr}."
    )
    print(
        "Fine-tuning (3 epochs) val accuracy by rate: "
        + ", ".join(f"{lr}: {100 * a:.1f}%" for lr, a in finetuned.items())
        + f"; chosen {finetune_lr}."
    )
    (out / "choice.args").write_text(" ".join([*chosen, plain_lr, finetune_lr]) + "\n")
    print(
        json.dumps(
            {
                "candidates": figures,
                "chosen": "/".join(chosen),
                "best_over_chosen": resolution,
                "plain_lr": plain_lr,
                "plain": plain,
                "finetune_lr": finetune_lr,
                "finetuned": finetuned,
            }
        )
    )


if __name__ == "__main__":
    main()
