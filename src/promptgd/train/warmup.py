"""Format warm-up (the paper's §4.3): a short ordinary fine-tune on a few training triples in Prompt and NC
format, so every compared model, the base included, has seen how queries and answers look and where an
answer stops. Without it, accuracy differences mix "learned the format" with "learned from the update"."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from promptgd.config import FormatConfig, WarmupConfig
from promptgd.data.encoding import Encoder
from promptgd.data.supervised import supervised_examples
from promptgd.data.triples import Triple
from promptgd.lm import TokenBatch, functional_forward, lm_loss


def format_warmup(
    model,
    tokenizer,
    triples: list[Triple],
    cfg: WarmupConfig,
    format_cfg: FormatConfig,
    seed: int,
    progress: bool = True,
    desc: str = "format warm-up",
) -> list[float]:
    """Fine-tune `model` in place on prompt ⊕ response and query ⊕ response (loss on the response and its
    terminator); returns the loss of each optimiser step."""
    device = next(model.parameters()).device
    examples = supervised_examples(Encoder(tokenizer, format_cfg), triples[: cfg.n_tasks])
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed)).tolist()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    forward, params = functional_forward(model), dict(model.named_parameters())
    losses = []
    model.train()
    batches = range(0, len(order), cfg.batch_size)
    for start in tqdm(batches, desc=desc, unit="step", disable=not progress, dynamic_ncols=True):
        chosen = [examples[i] for i in order[start : start + cfg.batch_size]]
        batch = TokenBatch.from_lists(
            [seq for seq, _ in chosen], tokenizer.pad_token_id, [n for _, n in chosen], device
        )
        loss = lm_loss(forward, params, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses
