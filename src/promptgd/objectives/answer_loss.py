"""The outer loss on the answer tokens, shared by LC and LG: Σ_j over answer tokens, mean over queries.

LC's target is the teacher's log-distribution at each answer position, so the term is
KL(P_teacher ‖ P_student) (Eq. 8). LG's target is the gold token id, so the term is its NLL (Eq. 9);
that is the KL to a one-hot teacher, which is why one function serves both.
"""

from __future__ import annotations

import torch

from promptgd.lm import Forward, Params, TokenBatch, token_logprobs


def answer_logprobs(forward: Forward, params: Params, batch: TokenBatch) -> torch.Tensor:
    """Student log-probs [n_answer_tokens, V] at the positions that predict the scored (answer) tokens."""
    logprobs = token_logprobs(forward, params, batch)
    return logprobs[batch.loss_mask[:, 1:].bool()]


def answer_loss(student_logprobs: torch.Tensor, target: torch.Tensor, n_queries: int) -> torch.Tensor:
    """`target`: [n, V] teacher log-probs (LC) or [n] token ids (LG), aligned with `student_logprobs` [n, V]."""
    if target.dim() == 2:
        per_token = (target.exp() * (target - student_logprobs)).sum(-1)
    else:
        per_token = -student_logprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return per_token.sum() / n_queries
