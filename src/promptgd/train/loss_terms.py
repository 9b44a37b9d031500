"""The outer loss's terms, each a small object that says what it needs. The outer loss of a step is
Σ_term weight · term: the meta objective (LC or LG through the inner step), μ times the Prompt term, λ times the LM term
on generic text, and the task-B fine-tuning term of joint transfer.

- A pass term is computed on each pass of the step's tasks, from the pass's parameter dict (one per pass, shared by
  every pass term, so each weight's gradient sums in one graph);
- a batch term is computed once per step on a batch of its own (`batch(step, device)`, a pure function of the step,
  so a resumed run draws what the uninterrupted run would have).
`name` is the term's key in metrics.jsonl.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from promptgd import distributed
from promptgd.config import RunConfig
from promptgd.data.lm_corpus import LMCorpus
from promptgd.data.supervised import SupervisedStream
from promptgd.data.triples import Triple
from promptgd.lm import Forward, Params, TokenBatch, lm_loss
from promptgd.models.parameterization import Parameterization
from promptgd.objectives.answer_loss import answer_logprobs, answer_loss
from promptgd.objectives.meta_task import MetaTask
from promptgd.train.metastep import meta_loss
from promptgd.update.explicit import InnerUpdate


@dataclass
class PassTerm:
    name: str
    weight: float
    loss: Callable[[Params, MetaTask], torch.Tensor]  # Σ over the pass's tasks, from the pass's parameter dict
    tokens: Callable[[MetaTask], int]  # what it reads, for tokens_per_s


@dataclass
class BatchTerm:
    name: str
    weight: float
    batch: Callable[[int, torch.device], TokenBatch]  # (step, device) -> the rows its LM loss is the mean over

    def backward(self, forward: Forward, fast: Callable[[], Params], step: int, sharded: bool) -> tuple[float, float]:
        """Backward of weight × the mean LM loss over the step's batch, of which this rank takes its share; returns
        (its part of that mean, its tokens), which summed over ranks give the whole batch's."""
        params = fast()
        batch = self.batch(step, next(iter(params.values())).device)
        n = batch.input_ids.shape[0]
        if sharded:  # each rank must join every FSDP2 forward and backward: all compute it, 1/world each
            mine, share = batch, 1 / distributed.world()
        else:
            rows = distributed.share(list(range(n)))
            if not rows:
                return 0.0, 0
            mine, share = batch.rows(rows), len(rows) / n
        loss = lm_loss(forward, params, mine) * share
        (self.weight * loss).backward()
        return loss.item(), mine.n_tokens * share


def pass_terms(cfg: RunConfig, param: Parameterization, update: InnerUpdate, first_order: bool) -> list[PassTerm]:
    """The meta objective, then the Prompt term where μ > 0 (not with frozen weights: at θ it is then a constant)."""

    def outer(params: Params, task: MetaTask) -> torch.Tensor:
        return meta_loss(param.forward, params, task, update, param.step_size(cfg.inner), cfg.inner, first_order)

    def prompt(params: Params, task: MetaTask) -> torch.Tensor:
        # Prompt mode at θ (no update) on the same target: keeps reading the context from the prompt.
        return answer_loss(answer_logprobs(param.forward, params, task.prompts), task.target, task.contexts_per_task)

    context_tokens = lambda task: sum(c.n_tokens for c in task.contexts) + task.queries.n_tokens  # noqa: E731
    terms = [PassTerm("outer", 1.0, outer, context_tokens)]
    if cfg.train.prompt_weight and not cfg.train.freeze_weights:
        terms.append(PassTerm("prompt", cfg.train.prompt_weight, prompt, lambda task: task.prompts.n_tokens))
    return terms


def batch_terms(cfg: RunConfig, tokenizer, encoder, val: list[Triple], task_b: list[Triple]) -> list[BatchTerm]:
    """λ·L_LM on generic text where λ > 0, and joint transfer's task-B fine-tuning term; neither with frozen weights.
    No paragraph of the LM corpus that holds a validation context is trained on: WikiText's offline training triples
    and LM text come from the same release file, and choosing settings on memorised continuations would mislead."""
    t, terms = cfg.train, []
    if t.freeze_weights:
        return terms
    if t.lm_weight > 0:
        corpus = LMCorpus(tokenizer, t.lm_corpus, t.lm_seq_len, t.seed, held_out=[v.context for v in val])
        terms.append(BatchTerm("lm", t.lm_weight, corpus.batch))
    if cfg.transfer.mode == "joint":
        stream = SupervisedStream(encoder, list(task_b), cfg.transfer.batch_size, t.seed)
        terms.append(BatchTerm("task_b", cfg.transfer.weight, stream.batch))
    return terms
