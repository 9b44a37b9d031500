"""Ordinary supervised fine-tuning on triples: the answer after the Prompt-format and the NC-format prefix.

Used by the format warm-up (every compared model sees the task's format), by the sequential transfer study
(meta-train on task A, then fine-tune on task B like this) and, as a loss term, by joint transfer (this loss
on B inside every outer step on A)."""

from __future__ import annotations

import torch

from promptgd.data.encoding import Encoder
from promptgd.data.triples import Triple
from promptgd.lm import TokenBatch

Example = tuple[list[int], int]  # (prefix ⊕ response ⊕ answer end, prefix length: tokens before it are not scored)


def supervised_examples(encoder: Encoder, triples: list[Triple]) -> list[Example]:
    """Two examples per triple: context ⊕ query → response (Prompt) and query → response (NC)."""
    examples = []
    for triple in triples:
        answer = encoder.response(triple) + encoder.answer_end()
        for prefix in (encoder.prompt(triple), encoder.query(triple)):
            examples.append((prefix + answer, len(prefix)))
    return examples


class SupervisedStream:
    """Batches of supervised examples; the batch of a step is a pure function of (seed, step), so a resumed
    run draws exactly what the uninterrupted run would have drawn."""

    def __init__(self, encoder: Encoder, triples: list[Triple], batch_size: int, seed: int):
        self.examples = supervised_examples(encoder, triples)
        if not self.examples:
            raise ValueError("transfer: task B has no training triples to fine-tune on")
        self.batch_size, self.seed, self.pad_id = batch_size, seed, encoder.tokenizer.pad_token_id

    def batch(self, step: int, device) -> TokenBatch:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        chosen = [
            self.examples[i]
            for i in torch.randint(len(self.examples), (self.batch_size,), generator=generator).tolist()
        ]
        return TokenBatch.from_lists([ids for ids, _ in chosen], self.pad_id, [n for _, n in chosen], device)
