"""The user API: absorb texts into a model's weights, then ask it questions.

promptgd absorb --model runs/y/model --context notes.txt --out updated/
promptgd ask --model updated/ "Who was the first person to walk on Mars?"
"""

from __future__ import annotations

import copy

import torch

from promptgd.config import InnerConfig
from promptgd.evaluate.decode import score_and_generate, stop_token_ids
from promptgd.lm import TokenBatch
from promptgd.models.parameterization import Parameterization, full_rank
from promptgd.models.update_settings import inner_config


def context_batches(tokenizer, texts: list[str], max_tokens: int, device) -> list[TokenBatch]:
    """One batch per text; a text longer than `max_tokens` is cut into consecutive chunks of the same batch,
    so it still counts as one context in the mean loss."""
    batches = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        chunks = [ids[i : i + max_tokens] for i in range(0, len(ids), max_tokens)]
        batches.append(TokenBatch.from_lists(chunks, tokenizer.pad_token_id, device=device))
    return batches


def absorb(
    model,
    tokenizer,
    texts: list[str],
    inner: InnerConfig | None = None,
    max_tokens: int = 1024,
    param: Parameterization | None = None,
):
    """Return a copy of `model` after the inner update on `texts` (the input model is left untouched).

    `inner` defaults to the step the model was meta-trained with (its update settings, read by `load_model`), or
    the library defaults for a model without one. `param` selects what the update moves, and must be a
    parameterization of `model` itself (default: every weight; a LoRA-inner one moves only its factors, and the
    returned model has the updated delta merged in). The update is the explicit one: a text longer than `max_tokens`
    is absorbed as consecutive chunks that count as one context."""
    if not texts:
        raise ValueError("absorb: no texts given")
    param = param or full_rank(model)
    if param.model is not model:
        raise ValueError("absorb: `param` is a parameterization of another model than `model`")
    inner = inner or inner_config(getattr(model, "update_settings", None))
    device = next(model.parameters()).device
    leaves = {name: p.detach().requires_grad_() for name, p in param.fast().items()}
    contexts = context_batches(tokenizer, texts, max_tokens, device)
    update = param.inner_update("explicit", guard=inner.guard)
    adapted = update.absorb(
        param.forward, leaves, contexts, 1, param.step_size(inner, detach=True), inner.steps, inner.mode
    )
    updated = copy.deepcopy(model)
    with torch.no_grad():
        weights = param.to_model({k: v.detach() for k, v in adapted.items()})  # LoRA-inner: factors merged in
        for name, p in updated.named_parameters():
            p.copy_(weights[name])
    return updated


@torch.no_grad()
def ask(model, tokenizer, question: str, max_new_tokens: int = 64, param: Parameterization | None = None) -> str:
    """Greedy answer to `question` (first line, as in evaluation), from `param` of `model` if given."""
    param = param or full_rank(model)
    params = {name: p.detach() for name, p in param.fast().items()}
    scored = score_and_generate(
        param.forward,
        params,
        [tokenizer(question)["input_ids"]],
        [[]],
        tokenizer.pad_token_id,
        stop_token_ids(tokenizer),
        max_new_tokens,
        next(model.parameters()).device,
    )
    return tokenizer.decode(scored.generated[0]).strip()
