"""Apply the SQuAD streams' rule on validation rows only (results/studies/stream_smollm2.md, "Rule"), and say why.

    python experiments/stream_squad_choice.py VAL_DIR

VAL_DIR: the directory experiments/stream_squad_val.sh fills. Prints the validation table, writes VAL_DIR/choice.args
(line 1: the chosen method's model, `start` or `sizes`, and its overrides; line 2: the plain step's η and the
fine-tuning baseline's rate) for experiments/stream_squad_test.sh, and ends with one JSON line of the figures and the
choices."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from promptgd.report.retention import first_within, json_ready, mode_metric, percent, share_text, stream_figures

RESOLVED = 0.02  # F1 differences under 2 points are ties (the rule's margin); 2 points or more are acted on
PLAIN = ("1e-3", "3e-3", "1e-2")  # smallest first: a tie goes to the step that moves the model least
FINETUNE = ("1e-5", "1e-4")


def main() -> None:
    val = Path(sys.argv[1])
    plain = {lr: mode_metric(val / f"plain_lr{lr}", "ft_stream", "f1") for lr in PLAIN}
    finetuned = {lr: mode_metric(val / f"finetuned_lr{lr}", "finetuned", "f1") for lr in FINETUNE}
    plain_lr, finetune_lr = first_within(plain, RESOLVED), first_within(finetuned, RESOLVED)
    guard = yaml.safe_load((val / "sizes8" / "config.yaml").read_text())["inner"]["guard"]
    sizes = f"inner.steps=8 inner.guard={guard}"
    # method -> (its stream row, the row holding its single-document FT, model, overrides for the test stage)
    methods = {
        f"plain step, η {plain_lr}": (f"plain_lr{plain_lr}", f"plain_lr{plain_lr}", "start", f"inner.lr={plain_lr}"),
        "step sizes, 8 steps, sequential (ours)": ("sizes8", "sizes8", "sizes", sizes),
        "step sizes, 8 steps, at θ (ours)": (
            "sizes8_at_theta",
            "sizes8",
            "sizes",
            f"{sizes} eval.stream_mode=at_theta",
        ),
    }
    figures = {name: stream_figures(val / row, "f1", val / "base", val / ft) for name, (row, ft, *_) in methods.items()}
    best = max(f["ft_stream"] for f in figures.values())
    tied = [name for name in methods if round(best - figures[name]["ft_stream"], 9) < RESOLVED]
    chosen = min(tied, key=lambda name: figures[name]["held_out_nll_ratio"])  # the one that costs held-out text least

    prompt = mode_metric(val / "base", "prompt", "f1")
    print(
        "| method | val FT F1 | val FT-stream F1 | F1 retention (95%) | first quarter | held-out NLL after/before | known facts after |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, f in figures.items():
        print(
            f"| {name}{' (chosen)' if name == chosen else ''} | {100 * f['ft']:.1f} | {100 * f['ft_stream']:.1f} | "
            f"{share_text(f['retention'].value, f['retention'])} | {share_text(f['first_quarter_retention'])} | "
            f"{f['held_out_nll_ratio']:.3f} | {percent(f['known_facts_after'])} |"
        )
    print(
        f"\nPrompt F1 (start model): {100 * prompt:.1f}. Tied (less than {100 * RESOLVED:.0f} points below the best): {', '.join(tied)}."
    )
    print("Plain step val FT-stream F1 by η: " + ", ".join(f"{lr}: {100 * v:.1f}" for lr, v in plain.items()))
    print("Fine-tuning (3 epochs) val F1 by rate: " + ", ".join(f"{lr}: {100 * v:.1f}" for lr, v in finetuned.items()))
    _, _, model, overrides = methods[chosen]
    (val / "choice.args").write_text(f"{model} {overrides}\n{plain_lr} {finetune_lr}\n")
    figures_json = {name: json_ready(f) for name, f in figures.items()}
    print(
        json.dumps(
            {
                "methods": figures_json,
                "chosen": chosen,
                "plain_lr": plain_lr,
                "plain": plain,
                "finetune_lr": finetune_lr,
                "finetuned": finetuned,
            }
        )
    )


if __name__ == "__main__":
    main()
