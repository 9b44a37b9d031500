"""Every report lists where its settings differ from the paper's; the paper presets differ in nothing it fixes."""

from pathlib import Path

import pytest

from promptgd.config import load_config
from promptgd.report.deviations import deviations, deviations_line

CONFIGS = Path(__file__).parent.parent / "configs"


def test_the_quickstart_names_each_setting_the_paper_fixes_otherwise():
    assert deviations(load_config(CONFIGS / "quickstart.yaml", [])) == [
        "model `packaged:smollm2-135m`, not Llama-3.2-1B",
        "inner η = 0.01, not 0.001",
        "outer batch 4, not 16",
        "640 meta-training tasks, not one epoch over the training split",
        "Prompt-mode term μ = 1, not in the paper's objective",
        "2000 training triples drawn, the paper has 5000",
        "200 test triples, the paper has 500",
    ]


@pytest.mark.parametrize("task", ["character_descriptions", "reversal", "squad"])
def test_the_paper_presets_keep_every_fixed_setting(task):
    cfg = load_config(CONFIGS / "paper" / f"{task}.yaml", [])
    assert deviations(cfg) == []
    assert deviations_line(cfg) == "Deviations from the paper's settings (§4): none of those it fixes."


def test_overrides_show_up_and_a_hub_revision_is_not_a_different_model():
    cfg = load_config(CONFIGS / "paper" / "squad.yaml", ["inner.steps=2", "train.first_order=true", "train.epochs=2"])
    assert deviations(cfg) == [
        "2 inner SGD steps, not 1",
        "2 epochs, not 1",
        "first-order meta-gradient; the paper differentiates through the inner step",
    ]


def test_our_methods_are_named_as_ours_and_the_papers_variants_as_variants():
    cfg = load_config(CONFIGS / "squad_step_sizes.yaml", ["inner.steps=8", "inner.guard=stop"])
    found = deviations(cfg)
    assert "8 inner SGD steps, not 1" in found
    assert "learned step sizes (inner.lr_scales=factored; ours), not one η" in found
    assert "weights frozen, only the step sizes meta-learned (ours)" in found
    assert any(d.startswith("guarded inner steps (inner.guard=stop; ours)") for d in found)
    lora = deviations(load_config(CONFIGS / "paper" / "squad.yaml", ["lora.variant=inner", "lora.meta_learn_b=false"]))
    assert lora == [
        "LoRA inner (rank 1, α 1, the inner step on the factors): the paper's Table 1 variant, not its full-rank method",
        "LoRA B kept at 0 at θ (ours)",
    ]
