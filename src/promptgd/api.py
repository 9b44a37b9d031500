"""The user API: absorb texts into a model's weights, then ask it questions.

promptgd absorb --model runs/y/model --context notes.txt --out updated/
promptgd ask --model updated/ "Who was the first person to walk on Mars?"
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from promptgd.config import InnerConfig
from promptgd.errors import UserError
from promptgd.evaluate.decode import score_and_generate, stop_token_ids
from promptgd.lm import Params, TokenBatch
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
    param, inner = _checked(model, param, inner)
    contexts = context_batches(tokenizer, texts, max_tokens, next(model.parameters()).device)
    return with_weights(model, param, _updated(param, inner, contexts, param.fast()))


def absorb_each(
    model,
    tokenizer,
    texts: list[str],
    inner: InnerConfig | None = None,
    max_tokens: int = 1024,
    param: Parameterization | None = None,
    state: tuple[int, Params] | None = None,
    save: Callable[[int, Params], None] | None = None,
    every: int = 0,
    progress: bool = True,
    at_theta: bool = False,
):
    """A copy of `model` after one inner update per text, in order, each starting from the previous one's θ' (a
    stream of documents); with `at_theta`, every text's update is taken at the model's own θ and all of them are
    applied together (their sum). `state` = (texts already absorbed, the parameter dict they left) continues a
    stream; `save(done, params)` is called every `every` texts (0: never) and after the last, with the parameter
    dict (`param.fast()`'s names) to continue from."""
    if not texts:
        raise ValueError("absorb: no texts given")
    param, inner = _checked(model, param, inner)
    if at_theta and param.lora_inner_scale is not None:
        # Summed factor moves are not summed updates: the merged weight would gain cross terms s·ΔB_i·ΔA_j.
        raise UserError("absorb: updates at θ are summed for full-rank models; a LoRA-inner model absorbs in sequence")
    device = next(model.parameters()).device
    theta = {k: v.detach() for k, v in param.fast().items()}
    done, current = state if state is not None else (0, theta)
    for position in tqdm(range(done, len(texts)), initial=done, total=len(texts), desc="absorb", disable=not progress):
        contexts = context_batches(tokenizer, [texts[position]], max_tokens, device)
        if at_theta:
            moved = _updated(param, inner, contexts, theta)
            current = {k: current[k] + (moved[k] - theta[k]) for k in theta}
        else:
            current = _updated(param, inner, contexts, current)
        if save is not None and (position + 1 == len(texts) or every and (position + 1) % every == 0):
            save(position + 1, current)
    return with_weights(model, param, current)


def _checked(model, param: Parameterization | None, inner: InnerConfig | None):
    param = param or full_rank(model)
    if param.model is not model:
        raise ValueError("absorb: `param` is a parameterization of another model than `model`")
    return param, inner or inner_config(getattr(model, "update_settings", None))


def _updated(param: Parameterization, inner: InnerConfig, contexts: list[TokenBatch], start: Params) -> Params:
    """`start` (a dict shaped like param.fast()) after the explicit inner update on `contexts`, detached."""
    leaves = {name: p.detach().requires_grad_() for name, p in start.items()}
    update = param.inner_update("explicit", guard=inner.guard)
    step = param.step_size(inner, detach=True)
    with torch.enable_grad():
        adapted = update.absorb(param.forward, leaves, contexts, 1, step, inner.steps, inner.mode)
    return {k: v.detach() for k, v in adapted.items()}


def with_weights(model, param: Parameterization, params: Params):
    """A copy of `model` whose weights are `params` (a dict shaped like param.fast(); LoRA-inner: factors merged)."""
    updated = copy.deepcopy(model)
    with torch.no_grad():
        weights = param.to_model(params)
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
