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
from promptgd.report.retention import first_within, json_ready, mode_metric, percent, share_text, stream_figures

RESOLVED = 0.10  # differences under 10 points are ties: 100 validation people resolve about ±11 points, paired
PLAIN = ("1e-3", "3e-3", "1e-2")  # smallest first: a tie goes to the step that moves the model least
FINETUNE = ("1e-5", "1e-4", "1e-3")
# In order of preference among candidates tied with the best: the preset's model before one trained for this (no
# extra training), the η it was trained for before a smaller one, one update after another (what a user whose texts
# arrive one by one can do) before updates taken at θ and summed.
CANDIDATES = (
    ("quickstart", "1e-2", "sequential"),
    ("quickstart", "1e-2", "at_theta"),
    ("quickstart", "3e-3", "sequential"),
    ("quickstart", "3e-3", "at_theta"),
    ("retention", "1e-2", "sequential"),
    ("retention", "1e-2", "at_theta"),
)


def row(model: str, lr: str, how: str) -> str:
    return f"val_retention_{how}" if model == "retention" else f"val_quickstart_{how}_lr{lr}"


def main() -> None:
    out = Path(sys.argv[1])
    plain = {lr: mode_metric(out / f"val_plain_lr{lr}", "ft_stream", "accuracy") for lr in PLAIN}
    finetuned = {lr: mode_metric(out / f"val_finetuned_lr{lr}", "finetuned", "accuracy") for lr in FINETUNE}
    plain_lr, finetune_lr = first_within(plain, RESOLVED), first_within(finetuned, RESOLVED)
    figures = {}
    for model, lr, how in CANDIDATES:
        # An at-θ row asks the stream only: NC, Prompt and single-document FT are its sequential twin's (same model, η).
        twin = out / row(model, lr, "sequential")
        figures[model, lr, how] = stream_figures(out / row(model, lr, how), "accuracy", twin, twin)
    stream_accuracy = {candidate: f["ft_stream"] for candidate, f in figures.items()}
    chosen = first_within(stream_accuracy, RESOLVED)

    print(
        "| model | η | stream | val FT acc | val FT-stream acc | retention (95%) | first quarter | "
        "held-out NLL after/before | known facts after | Prompt before → after the stream |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for candidate, f in figures.items():
        print(
            f"| {candidate[0]}{' (chosen)' if candidate == chosen else ''} | {candidate[1]} | {candidate[2]} | "
            f"{100 * f['ft']:.1f} | {100 * f['ft_stream']:.1f} | {share_text(f['retention'].value, f['retention'])} | "
            f"{share_text(f['first_quarter_retention'])} | {f['held_out_nll_ratio']:.3f} | "
            f"{percent(f['known_facts_after'])} | {percent(f['prompt_before'])} → {percent(f['prompt_after_stream'])} |"
        )
    best = max(stream_accuracy, key=stream_accuracy.get)
    best_over_chosen = None
    if best != chosen:  # how well the validation people resolve the difference the tie rule set aside
        arms = {
            name: arm(evaluation_records(out / row(*candidate)), "ft_stream", "accuracy")
            for name, candidate in (("best", best), ("chosen", chosen))
        }
        gap = bootstrap(arms, difference("best", "chosen"))
        best_over_chosen = [gap.value, gap.low, gap.high]
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
    summary = {
        "candidates": {"/".join(candidate): json_ready(f) for candidate, f in figures.items()},
        "chosen": "/".join(chosen),
        "best_over_chosen": best_over_chosen,
        "plain_lr": plain_lr,
        "plain": plain,
        "finetune_lr": finetune_lr,
        "finetuned": finetuned,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
