"""Learning from conditioning (the paper's Eq. 8): distil the frozen teacher reading c ⊕ q into the
updated student reading q alone, on the teacher's own greedy answer â. No gold labels are used."""

from __future__ import annotations

import copy

import torch

from promptgd.data.encoding import Encoder
from promptgd.data.triples import Triple
from promptgd.evaluate.decode import score_and_generate, stop_token_ids
from promptgd.lm import Forward, Params, TokenBatch, functional_forward, token_logprobs
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


class LCObjective:
    """LC's tasks, with the frozen teacher they are distilled from: a copy of the starting model, which never
    receives gradients. Its greedy answers are decoded once per task and kept (`answers`, by task index): a
    checkpoint holds them, so a resumed run distils towards the very same answers."""

    def __init__(self, start_model: torch.nn.Module, encoder: Encoder, max_new_tokens: int, device):
        self.teacher = copy.deepcopy(start_model).requires_grad_(False).eval()
        self.encoder, self.max_new_tokens, self.device = encoder, max_new_tokens, device
        self.answers: dict[int, list[int]] = {}

    def tasks(self, triples: list[Triple], batch: list[int], groups: list[list[int]]) -> list[MetaTask]:
        """The tasks of `groups` (this process's share of the outer batch `batch`, indices into `triples`). Every
        process decodes the whole batch's missing answers in one batch, as a single process does: answers decoded in
        other batches could differ in a near-tie."""
        forward, params = functional_forward(self.teacher), dict(self.teacher.named_parameters())
        if missing := [i for i in batch if i not in self.answers]:
            decoded = teacher_answers(
                forward,
                params,
                self.encoder,
                [triples[i] for i in missing],
                self.max_new_tokens,
                batch_size=len(missing),
                device=self.device,
            )
            self.answers.update(zip(missing, decoded))
        return [
            lc_task(forward, params, self.encoder, [triples[i] for i in g], [self.answers[i] for i in g], self.device)
            for g in groups
        ]

    def state_dict(self) -> dict:
        return {"teacher_answers": {str(k): v for k, v in self.answers.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.answers = {int(k): v for k, v in state["teacher_answers"].items()}
