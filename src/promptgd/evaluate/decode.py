"""Teacher-forced response NLL and greedy decoding from one shared forward pass.

Prefixes are left-padded so they all end at column P; responses follow, right-padded. One forward over
[prefix ⊕ response] scores the response. The same logits also say how far greedy decoding would follow
the gold response: at each response position the greedy token is the argmax there, so greedy decoding
reproduces the gold tokens up to the first position j where the argmax differs (the gold response is a
free "draft", as in speculative decoding). Decoding therefore resumes at P + j from the cropped KV cache
instead of at P, and a correct answer (draft accepted, then a stop token) costs no decoding step at all.
The generated text is exactly what plain greedy decoding from P would produce.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache

import torch
import torch.nn.functional as F
from transformers.modeling_outputs import CausalLMOutputWithPast

from promptgd.lm import Forward, Params, at_least_float32

# transformers renamed the KV cache from `past_key_values` to `cache` within 5.x (output field and forward
# argument alike; 5.17 has the old name, 5.24 the new one): use whichever the installed version has.
CACHE = "cache" if "cache" in {f.name for f in fields(CausalLMOutputWithPast)} else "past_key_values"


@dataclass
class Scored:
    nll: list[float]  # mean NLL per response token, one per example (nan where the response is empty)
    token_accuracy: list[float]  # share of response tokens that are the argmax given the gold prefix (nan if empty)
    generated: list[list[int]]  # greedy continuation of each prefix, stop token excluded
    stopped: list[bool]  # whether decoding ended at a stop token rather than at max_new_tokens
    decode_steps: int  # incremental forward passes that were needed after the scoring pass


@lru_cache(maxsize=8)
def stop_token_ids(tokenizer) -> frozenset[int]:
    """Token ids that end an answer: EOS and every token whose text contains a newline."""
    newline = {i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i])}
    return frozenset(newline | {tokenizer.eos_token_id})


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
        logprobs = F.log_softmax(at_least_float32(out.logits[:, width - 1 : -1]), dim=-1)
        token_nll = -logprobs.gather(-1, ids[:, width:].unsqueeze(-1)).squeeze(-1)
        resp_mask = mask[:, width:].to(token_nll.dtype)
        nll = ((token_nll * resp_mask).sum(1) / resp_mask.sum(1)).tolist()

    # greedy[i, j]: the greedy token after prefix ⊕ response[:j].
    greedy = out.logits[:, width - 1 :].argmax(-1).tolist()
    token_accuracy = [
        sum(g == t for g, t in zip(greedy[i], r)) / len(r) if r else float("nan") for i, r in enumerate(responses)
    ]
    generated: list[list[int]] = []
    accepted: list[int] = []  # gold tokens that greedy decoding reproduces; they already sit in the cache
    stopped = [False] * n
    for i, r in enumerate(responses):
        j = 0
        while j < len(r) and j < max_new_tokens and greedy[i][j] == r[j] and r[j] not in stop_ids:
            j += 1
        generated.append(r[:j])
        accepted.append(j)
        if j < max_new_tokens:
            if greedy[i][j] in stop_ids:
                stopped[i] = True
            else:
                generated[i].append(greedy[i][j])
    done = [stopped[i] or len(generated[i]) >= max_new_tokens for i in range(n)]
    if all(done):
        return Scored(nll=nll, token_accuracy=token_accuracy, generated=generated, stopped=stopped, decode_steps=0)

    # Resume after the shortest accepted draft among unfinished sequences; the cache keeps prefix ⊕ those
    # tokens, and every sequence re-feeds its own known tokens from there on (forced) before decoding freely.
    start = min(accepted[i] for i in range(n) if not done[i])
    cache = getattr(out, CACHE)
    cache.crop(-(resp_width - start) if resp_width > start else 0)
    attention = torch.cat([mask[:, :width], torch.ones((n, start), dtype=mask.dtype, device=device)], dim=1)
    position = positions[:, width - 1] + start
    steps = 0
    while not all(done):
        # Feed token `start + steps` of every sequence (pad for the finished ones; their output is unused).
        column = start + steps
        feed = [generated[i][column] if column < len(generated[i]) else pad_id for i in range(n)]
        attention = torch.cat([attention, torch.ones((n, 1), dtype=attention.dtype, device=device)], dim=1)
        position = position + 1
        out = forward(
            params,
            input_ids=torch.tensor(feed, device=device).unsqueeze(1),
            attention_mask=attention,
            position_ids=position.unsqueeze(1),
            use_cache=True,
            **{CACHE: cache},
        )
        cache = getattr(out, CACHE)
        steps += 1
        next_tokens = out.logits[:, -1].argmax(-1).tolist()
        for i in range(n):
            if done[i] or len(generated[i]) > column + 1:  # finished, or still inside its forced draft
                continue
            if next_tokens[i] in stop_ids:
                stopped[i] = done[i] = True
            else:
                generated[i].append(next_tokens[i])
                done[i] = len(generated[i]) >= max_new_tokens
    return Scored(nll=nll, token_accuracy=token_accuracy, generated=generated, stopped=stopped, decode_steps=steps)
