"""A meta-training task as the objectives build it and the meta-step consumes it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from promptgd.lm import TokenBatch


@dataclass
class MetaTask:
    contexts: list[TokenBatch]  # what the inner step absorbs (k contexts for multi-context training)
    queries: TokenBatch  # query ⊕ answer rows, one per context; answer tokens are the scored ones
    prompts: TokenBatch  # context ⊕ separator ⊕ query ⊕ answer rows, answer tokens scored (Prompt mode)
    target: torch.Tensor  # [n_answer_tokens, V] teacher log-probs (LC) or [n_answer_tokens] ids (LG)
