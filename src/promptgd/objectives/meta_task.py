"""A meta-training task as the objectives build it and the meta-step consumes it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from promptgd.lm import TokenBatch


@dataclass
class MetaTask:
    contexts: list[TokenBatch]  # what the inner step absorbs (k contexts for multi-context training), task-major
    queries: TokenBatch  # query ⊕ answer rows, one per context; answer tokens are the scored ones
    prompts: TokenBatch  # context ⊕ separator ⊕ query ⊕ answer rows, answer tokens scored (Prompt mode)
    target: torch.Tensor  # [n_answer_tokens, V] teacher log-probs (LC) or [n_answer_tokens] ids (LG)
    n_tasks: int = (
        1  # tasks held (merge): each has its own θ' from its own k contexts; only the implicit update runs several
    )

    @property
    def contexts_per_task(self) -> int:
        return len(self.contexts) // self.n_tasks

    @staticmethod
    def merge(tasks: list[MetaTask]) -> MetaTask:
        """Several tasks as one pass: rows stay in task order, so the targets' row-major order still matches."""
        return MetaTask(
            contexts=[c for t in tasks for c in t.contexts],
            queries=TokenBatch.concat([t.queries for t in tasks]),
            prompts=TokenBatch.concat([t.prompts for t in tasks]),
            target=torch.cat([t.target for t in tasks]),
            n_tasks=sum(t.n_tasks for t in tasks),
        )


def into_passes(tasks: list[MetaTask], tasks_per_pass: int | None, pass_tokens: int) -> list[list[MetaTask]]:
    """Consecutive tasks grouped into passes: one task each when `tasks_per_pass` is 1 (the explicit update), else
    (None) as many as keep the pass's context and query tokens, padded, within `pass_tokens` (at least one a pass)."""
    if tasks_per_pass == 1:
        return [[task] for task in tasks]
    groups, current = [], []
    for task in tasks:
        candidate = current + [task]
        contexts = [c for t in candidate for c in t.contexts]
        if current and padded_tokens(contexts) + padded_tokens([t.queries for t in candidate]) > pass_tokens:
            groups.append(current)
            candidate = [task]
        current = candidate
    groups.append(current)
    return groups


def padded_tokens(batches: list[TokenBatch]) -> int:
    """Token slots of `batches` padded into one batch: what a pass costs in memory and time."""
    return sum(len(b.input_ids) for b in batches) * max(b.input_ids.shape[1] for b in batches)
