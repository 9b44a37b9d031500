"""Teacher-forced response NLL and greedy decoding in one pass over a shared KV cache.

Prefixes are left-padded so they all end at the same column P; responses follow, right-padded. One
forward over [prefix ⊕ response] scores the response and its logit at P−1 is the first greedy token;
the cache is then cropped back to P and decoding continues from there, so the prefix is encoded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from promptgd.update.inner import Forward, Params


@dataclass
class Scored:
    nll: list[float]  # mean NLL per response token, one per example (nan where the response is empty)
    generated: list[list[int]]  # greedy continuation of each prefix, stop token excluded
    stopped: list[bool]  # whether decoding ended at a stop token rather than at max_new_tokens


@lru_cache(maxsize=8)
def _stop_token_ids(tokenizer) -> frozenset[int]:
    """Token ids that end an answer: EOS and every token whose text contains a newline."""
    newline = {i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i])}
    return frozenset(newline | {tokenizer.eos_token_id})


def stop_token_ids(tokenizer) -> frozenset[int]:
    return _stop_token_ids(tokenizer)


@torch.no_grad()
def score_and_generate(
    forward: Forward,
    params: Params,
    prefixes: list[list[int]],
    responses: list[list[int]],
    pad_id: int,
    stop_ids: frozenset[int],
    max_new_tokens: int,
    device: torch.device,
) -> Scored:
    n = len(prefixes)
    width = max(len(p) for p in prefixes)
    resp_width = max(len(r) for r in responses)
    ids = torch.full((n, width + resp_width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, (p, r) in enumerate(zip(prefixes, responses)):
        ids[i, width - len(p) : width] = torch.tensor(p, dtype=torch.long)
        ids[i, width : width + len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(p) : width + len(r)] = 1
    ids, mask = ids.to(device), mask.to(device)
    # Positions count real tokens only, so left padding does not shift the rotary phases.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = forward(params, input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)

    nll = [float("nan")] * n
    if resp_width:
        logprobs = F.log_softmax(out.logits[:, width - 1 : -1].float(), dim=-1)
        targets = ids[:, width:]
        resp_mask = mask[:, width:].float()
        token_nll = -logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        nll = ((token_nll * resp_mask).sum(1) / resp_mask.sum(1)).tolist()

    cache = out.cache
    cache.crop(-resp_width)
    next_token = out.logits[:, width - 1].argmax(-1)
    attention = mask[:, :width]
    position = positions[:, width - 1]
    generated: list[list[int]] = [[] for _ in range(n)]
    stopped = [False] * n
    done = torch.zeros(n, dtype=torch.bool, device=device)
    for step in range(max_new_tokens):
        for i in (~done).nonzero().flatten().tolist():
            token = int(next_token[i])
            if token in stop_ids:
                done[i] = stopped[i] = True
            else:
                generated[i].append(token)
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        attention = torch.cat([attention, torch.ones((n, 1), dtype=attention.dtype, device=device)], dim=1)
        position = position + 1
        out = forward(
            params,
            input_ids=next_token.unsqueeze(1),
            attention_mask=attention,
            position_ids=position.unsqueeze(1),
            cache=cache,
            use_cache=True,
        )
        cache = out.cache
        next_token = out.logits[:, -1].argmax(-1)
    return Scored(nll=nll, generated=generated, stopped=stopped)
