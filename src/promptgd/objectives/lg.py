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


class LGObjective:
    """LG's tasks: the gold responses are the targets, so there is nothing to decode or to checkpoint."""

    def __init__(self, encoder: Encoder, device):
        self.encoder, self.device = encoder, device

    def tasks(self, triples: list[Triple], batch: list[int], groups: list[list[int]]) -> list[MetaTask]:
        return [lg_task(self.encoder, [triples[i] for i in g], self.device) for g in groups]

    def state_dict(self) -> dict:
        return {"teacher_answers": {}}

    def load_state_dict(self, state: dict) -> None:
        pass
