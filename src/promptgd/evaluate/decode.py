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
    n, width = len(prefixes), max(len(p) for p in prefixes)
    ids, mask = _left_padded(prefixes, responses, pad_id, width)
    ids, mask = ids.to(device), mask.to(device)
    # Positions count real tokens only, so left padding does not shift the rotary phases.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = forward(params, input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
    nll = _response_nll(out.logits, ids, mask, width)
    # greedy[i, j]: the greedy token after prefix ⊕ response[:j].
    greedy = out.logits[:, width - 1 :].argmax(-1).tolist()
    token_accuracy = [
        sum(g == t for g, t in zip(greedy[i], r)) / len(r) if r else float("nan") for i, r in enumerate(responses)
    ]
    generated, accepted, stopped = _accepted_drafts(greedy, responses, stop_ids, max_new_tokens)
    done = [stopped[i] or len(generated[i]) >= max_new_tokens for i in range(n)]
    if all(done):
        return Scored(nll=nll, token_accuracy=token_accuracy, generated=generated, stopped=stopped, decode_steps=0)
    # Resume after the shortest accepted draft among unfinished sequences; the cache keeps prefix ⊕ those
    # tokens, and every sequence re-feeds its own known tokens from there on (forced) before decoding freely.
    start = min(accepted[i] for i in range(n) if not done[i])
    resp_width = ids.shape[1] - width
    cache = getattr(out, CACHE)
    cache.crop(-(resp_width - start) if resp_width > start else 0)
    attention = torch.cat([mask[:, :width], torch.ones((n, start), dtype=mask.dtype, device=device)], dim=1)
    decoding = _Decoding(forward, params, generated, stopped, done, pad_id, stop_ids, max_new_tokens)
    steps = decoding.run(cache, attention, positions[:, width - 1] + start, start)
    return Scored(nll=nll, token_accuracy=token_accuracy, generated=generated, stopped=stopped, decode_steps=steps)


def _left_padded(prefixes, responses, pad_id: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[prefix ⊕ response] rows with every prefix ending at column `width`, and their attention mask."""
    resp_width = max(len(r) for r in responses)
    ids = torch.full((len(prefixes), width + resp_width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, (p, r) in enumerate(zip(prefixes, responses)):
        ids[i, width - len(p) : width] = torch.tensor(p, dtype=torch.long)
        ids[i, width : width + len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(p) : width + len(r)] = 1
    return ids, mask


def _response_nll(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, width: int) -> list[float]:
    """Mean NLL per response token of each row (nan where the response is empty)."""
    if ids.shape[1] == width:
        return [float("nan")] * ids.shape[0]
    logprobs = F.log_softmax(at_least_float32(logits[:, width - 1 : -1]), dim=-1)
    token_nll = -logprobs.gather(-1, ids[:, width:].unsqueeze(-1)).squeeze(-1)
    resp_mask = mask[:, width:].to(token_nll.dtype)
    return ((token_nll * resp_mask).sum(1) / resp_mask.sum(1)).tolist()


def _accepted_drafts(greedy, responses, stop_ids, max_new_tokens: int):
    """How far greedy decoding follows each gold response, and the greedy token after it: (generated so far,
    gold tokens accepted, whether decoding already stopped)."""
    generated, accepted, stopped = [], [], [False] * len(responses)
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
    return generated, accepted, stopped


@dataclass
class _Decoding:
    """Incremental greedy decoding after the scoring pass; fills `generated`, `stopped` and `done` in place."""

    forward: Forward
    params: Params
    generated: list[list[int]]
    stopped: list[bool]
    done: list[bool]
    pad_id: int
    stop_ids: frozenset[int]
    max_new_tokens: int

    def run(self, cache, attention: torch.Tensor, position: torch.Tensor, start: int) -> int:
        """Decode from column `start` of every row until all are done; returns the steps taken."""
        n, device, steps = len(self.generated), attention.device, 0
        while not all(self.done):
            # Feed token `start + steps` of every sequence (pad for the finished ones; their output is unused).
            column = start + steps
            feed = [g[column] if column < len(g) else self.pad_id for g in self.generated]
            attention = torch.cat([attention, torch.ones((n, 1), dtype=attention.dtype, device=device)], dim=1)
            position = position + 1
            out = self.forward(
                self.params,
                input_ids=torch.tensor(feed, device=device).unsqueeze(1),
                attention_mask=attention,
                position_ids=position.unsqueeze(1),
                use_cache=True,
                **{CACHE: cache},
            )
            cache = getattr(out, CACHE)
            steps += 1
            for i, token in enumerate(out.logits[:, -1].argmax(-1).tolist()):
                if self.done[i] or len(self.generated[i]) > column + 1:  # finished, or still in its forced draft
                    continue
                if token in self.stop_ids:
                    self.stopped[i] = self.done[i] = True
                else:
                    self.generated[i].append(token)
                    self.done[i] = len(self.generated[i]) >= self.max_new_tokens
        return steps
