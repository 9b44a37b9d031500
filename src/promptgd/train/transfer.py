"""Cross-task transfer (the paper's Table 3): meta-train on task A, and fine-tune ordinarily on task B either
afterwards (sequential, here) or inside every outer step (joint, the trainer's task-B term).

"Ordinarily" means the format warm-up's supervised loss (answer after the Prompt and the NC prefix), so the
model learns B's format and facts but is never meta-trained on B: FT accuracy on B's test split then measures
whether learning-to-absorb transferred."""

from __future__ import annotations

from promptgd.config import RunConfig, WarmupConfig
from promptgd.data.tasks import load_task
from promptgd.data.triples import Triple
from promptgd.train.warmup import format_warmup


def task_b_triples(cfg: RunConfig) -> list[Triple]:
    """Task B's training triples (its test split, disjoint by construction, is what transfer is measured on)."""
    return load_task(cfg.transfer.task_b, cfg.transfer.n_tasks, 1, cfg.task.seed).train


def finetune_on_task_b(model, tokenizer, cfg: RunConfig, progress: bool = True) -> list[float]:
    """Sequential transfer's second stage: fine-tune `model` in place on task B; returns the step losses."""
    t = cfg.transfer
    return format_warmup(
        model,
        tokenizer,
        task_b_triples(cfg),
        WarmupConfig(n_tasks=t.n_tasks, lr=t.lr, batch_size=t.batch_size),
        cfg.format,
        cfg.train.seed,
        progress,
        desc=f"fine-tune on {t.task_b}",
    )
