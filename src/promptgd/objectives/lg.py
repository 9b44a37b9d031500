"""Learning from gold labels (the paper's Eq. 9): −log P_θ'(r | q) on the gold response and its terminator."""

from __future__ import annotations

from promptgd.data.encoding import Encoder
from promptgd.data.triples import Triple
from promptgd.lm import TokenBatch
from promptgd.objectives.meta_task import MetaTask


def lg_task(encoder: Encoder, triples: list[Triple], device) -> MetaTask:
    pad = encoder.tokenizer.pad_token_id
    answers = [encoder.response(t) + encoder.answer_end() for t in triples]
    queries = TokenBatch.answered([encoder.query(t) for t in triples], answers, pad, device)
    return MetaTask(
        contexts=[TokenBatch.from_lists([encoder.context(t)], pad, device=device) for t in triples],
        queries=queries,
        prompts=TokenBatch.answered([encoder.prompt(t) for t in triples], answers, pad, device),
        target=queries.input_ids[queries.loss_mask.bool()],
    )
