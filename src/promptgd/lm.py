"""The functional language-model primitives every layer uses: a parameter dict, a forward that takes one, padded
token batches and their next-token log-probabilities and loss. Imports nothing of promptgd's, so data, models,
the inner update, objectives and evaluation can all build on it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call

Params = dict[str, torch.Tensor]
Forward = Callable[..., object]  # forward(params, input_ids=..., attention_mask=..., ...) -> ModelOutput


def functional_forward(model: torch.nn.Module) -> Forward:
    """Call `model` with `params` swapped in; buffers (rotary tables) stay the model's own.

    `tie_weights=True` makes one tensor under `model.embed_tokens.weight` feed the tied `lm_head` as well,
    so tied embeddings stay tied through the inner update.
    """

    def forward(params: Params, **kwargs):
        return functional_call(model, params, args=(), kwargs=kwargs, tie_weights=True, strict=False)

    return forward


@dataclass
class TokenBatch:
    """Right-padded token sequences; `loss_mask[i, t]` marks tokens whose prediction is scored."""

    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    loss_mask: torch.Tensor  # [B, T]: 1 where token t is a target (its predictor is position t-1)

    @staticmethod
    def from_lists(
        sequences: list[list[int]], pad_id: int, scored_from: list[int] | None = None, device=None
    ) -> TokenBatch:
        """Pad `sequences`; tokens at index >= scored_from[i] (default 1: all but the first) are scored."""
        length = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
        attention = torch.zeros((len(sequences), length), dtype=torch.long)
        scored = torch.zeros((len(sequences), length), dtype=torch.long)
        for i, seq in enumerate(sequences):
            ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            attention[i, : len(seq)] = 1
            scored[i, max(1, scored_from[i] if scored_from else 1) : len(seq)] = 1
        return TokenBatch(ids.to(device), attention.to(device), scored.to(device))

    @staticmethod
    def answered(prefixes: list[list[int]], answers: list[list[int]], pad_id: int, device=None) -> TokenBatch:
        """Rows prefix ⊕ answer with only the answer tokens scored."""
        return TokenBatch.from_lists(
            [p + a for p, a in zip(prefixes, answers)], pad_id, [len(p) for p in prefixes], device
        )

    @staticmethod
    def concat(batches: list[TokenBatch]) -> TokenBatch:
        """The rows of `batches` in order, right-padded to the longest (pad positions are masked, their ids unused)."""
        width = max(b.input_ids.shape[1] for b in batches)

        def stacked(field: str) -> torch.Tensor:
            return torch.cat([F.pad(getattr(b, field), (0, width - b.input_ids.shape[1])) for b in batches])

        return TokenBatch(stacked("input_ids"), stacked("attention_mask"), stacked("loss_mask"))

    def rows(self, indices: list[int]) -> TokenBatch:
        return TokenBatch(self.input_ids[indices], self.attention_mask[indices], self.loss_mask[indices])

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Softmax-family ops in bfloat16 lose the small probabilities that KL and NLL depend on; float64 stays."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def token_logprobs(forward: Forward, params: Params, batch: TokenBatch) -> torch.Tensor:
    """Log-probabilities [B, T-1, V] of the next token at every position."""
    logits = forward(params, input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return F.log_softmax(at_least_float32(logits[:, :-1]), dim=-1)


def sequence_losses(forward: Forward, params: Params, batch: TokenBatch) -> torch.Tensor:
    """Next-token NLL of each sequence [B]: the mean over its scored tokens."""
    logits = forward(params, input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
    targets = batch.input_ids[:, 1:]
    nll = F.cross_entropy(at_least_float32(logits.flatten(0, 1)), targets.flatten(), reduction="none").view_as(targets)
    mask = batch.loss_mask[:, 1:].to(nll.dtype)
    return (nll * mask).sum(1) / mask.sum(1).clamp(min=1)


def lm_loss(forward: Forward, params: Params, batch: TokenBatch) -> torch.Tensor:
    """Next-token NLL: the mean over each sequence's scored tokens, then over sequences (each text counts once)."""
    return sequence_losses(forward, params, batch).mean()
