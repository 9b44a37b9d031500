"""Learning from conditioning (the paper's Eq. 8): distil the frozen teacher reading c ⊕ q into the
updated student reading q alone, on the teacher's own greedy answer â. No gold labels are used."""

from __future__ import annotations

import torch

from promptgd.data.encoding import Encoder
from promptgd.data.triples import Triple
from promptgd.evaluate.decode import score_and_generate, stop_token_ids
from promptgd.lm import Forward, Params, TokenBatch, token_logprobs
from promptgd.objectives.meta_task import MetaTask


def teacher_answers(
    forward: Forward,
    params: Params,
    encoder: Encoder,
    triples: list[Triple],
    max_new_tokens: int,
    batch_size: int,
    device,
) -> list[list[int]]:
    """â for each triple: the teacher's greedy answer given c ⊕ q, closed by the answer terminator when the
    teacher stopped by itself, so the student also learns where the answer ends. Depends only on the
    teacher, so callers compute it once and cache it."""
    stop_ids = stop_token_ids(encoder.tokenizer)
    answers = []
    for start in range(0, len(triples), batch_size):
        batch = triples[start : start + batch_size]
        scored = score_and_generate(
            forward,
            params,
            [encoder.prompt(t) for t in batch],
            [[] for _ in batch],
            pad_id=encoder.tokenizer.pad_token_id,
            stop_ids=stop_ids,
            max_new_tokens=max_new_tokens,
            device=device,
        )
        answers += [
            gen + (encoder.answer_end() if stopped else []) for gen, stopped in zip(scored.generated, scored.stopped)
        ]
    return answers


@torch.no_grad()
def lc_task(
    teacher: Forward, teacher_params: Params, encoder: Encoder, triples: list[Triple], answers: list[list[int]], device
) -> MetaTask:
    """Student rows q ⊕ â; target = the teacher's log-distribution at the same answer positions of c ⊕ q ⊕ â."""
    pad = encoder.tokenizer.pad_token_id
    with_context = TokenBatch.answered([encoder.prompt(t) for t in triples], answers, pad, device)
    target = token_logprobs(teacher, teacher_params, with_context)[with_context.loss_mask[:, 1:].bool()]
    return MetaTask(
        contexts=[TokenBatch.from_lists([encoder.context(t)], pad, device=device) for t in triples],
        queries=TokenBatch.answered([encoder.query(t) for t in triples], answers, pad, device),
        prompts=with_context,
        target=target,
    )
