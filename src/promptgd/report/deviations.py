"""Where a run's settings differ from the paper's (§4 of arXiv 2506.20989), in words, for every report.

What the paper fixes (§4.1–4.2): Llama-3.2-1B; one inner step of plain SGD at η = 1e-3; outer batch 16; one epoch
over the whole training split; the objectives of §3 (no Prompt-mode term), differentiated through the inner step;
its data sizes below. What it leaves open (outer learning rate, clip norm, λ, the warm-up subset, LoRA scaling) is
ours to choose and is not listed.
"""

from __future__ import annotations

from promptgd.config import RunConfig

PAPER_MODEL = "meta-llama/Llama-3.2-1B"
PAPER_INNER_LR = 1e-3
PAPER_OUTER_BATCH = 16
# Triples after the paper's preprocessing (§4.1): (training, test).
PAPER_SIZES = {
    "character_descriptions": (5000, 500),
    "reversal": (5000, 500),
    "squad": (82031, 10380),
    "wikitext": (343586, 758),
}


def deviations(cfg: RunConfig) -> list[str]:
    """The settings of `cfg` that the paper fixes otherwise, one phrase each; empty when none do."""
    found = []
    model = cfg.model.spec.split("@")[0]
    if model != PAPER_MODEL:
        found.append(f"model `{model}`, not Llama-3.2-1B")
    if cfg.inner.lr != PAPER_INNER_LR:
        found.append(f"inner η = {cfg.inner.lr:g}, not {PAPER_INNER_LR:g}")
    if cfg.inner.steps != 1:
        found.append(f"{cfg.inner.steps} inner SGD steps, not 1")
    if cfg.train.batch_size != PAPER_OUTER_BATCH:
        found.append(f"outer batch {cfg.train.batch_size}, not {PAPER_OUTER_BATCH}")
    if cfg.train.n_tasks:
        found.append(f"{cfg.train.n_tasks} meta-training tasks, not one epoch over the training split")
    if cfg.train.epochs != 1:
        found.append(f"{cfg.train.epochs} epochs, not 1")
    if cfg.train.prompt_weight:
        found.append(f"Prompt-mode term μ = {cfg.train.prompt_weight:g}, not in the paper's objective")
    if cfg.train.first_order:
        found.append("first-order meta-gradient; the paper differentiates through the inner step")
    found += _our_methods(cfg)
    if cfg.task.name in PAPER_SIZES:
        paper_train, paper_test = PAPER_SIZES[cfg.task.name]
        if cfg.task.n_train and cfg.task.n_train != paper_train:
            found.append(f"{cfg.task.n_train} training triples drawn, the paper has {paper_train}")
        if cfg.task.n_test and cfg.task.n_test != paper_test:
            found.append(f"{cfg.task.n_test} test triples, the paper has {paper_test}")
    return found


def _our_methods(cfg: RunConfig) -> list[str]:
    """What the run adds to or changes in the paper's method itself, each named as ours or as the paper's variant."""
    found = []
    if cfg.inner.lr_scales != "none":
        found.append(f"learned step sizes (inner.lr_scales={cfg.inner.lr_scales}; ours), not one η")
    if cfg.train.freeze_weights:
        found.append("weights frozen, only the step sizes meta-learned (ours)")
    if cfg.lora.variant != "none":
        where = "the inner step on the factors" if cfg.lora.variant == "inner" else "a full inner step"
        found.append(
            f"LoRA {cfg.lora.variant} (rank {cfg.lora.rank}, α {cfg.lora.alpha:g}, {where}): the paper's Table 1 "
            "variant, not its full-rank method"
        )
        if not cfg.lora.meta_learn_b:
            found.append("LoRA B kept at 0 at θ (ours)")
    if cfg.inner.guard != "none":
        found.append(
            f"guarded inner steps (inner.guard={cfg.inner.guard}; ours): a step that raises the context loss is undone"
        )
    return found


def deviations_line(cfg: RunConfig) -> str:
    found = deviations(cfg)
    if not found:
        return "Deviations from the paper's settings (§4): none of those it fixes."
    return "Deviations from the paper's settings (§4): " + "; ".join(found) + "."
