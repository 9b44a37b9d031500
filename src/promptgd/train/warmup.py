"""Format warm-up (the paper's §4.3): a short ordinary fine-tune on a few training triples in Prompt and NC
format, so every compared model, the base included, has seen how queries and answers look and where an
answer stops. Without it, accuracy differences mix "learned the format" with "learned from the update"."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from promptgd.config import FormatConfig, LoraConfig, WarmupConfig
from promptgd.data.encoding import Encoder
from promptgd.data.supervised import supervised_examples
from promptgd.data.triples import Triple
from promptgd.lm import TokenBatch, functional_forward, lm_loss
from promptgd.models.lora import init_factors, merge, merge_into_model


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
    terminator), every weight or (warmup.lora_rank) a low-rank delta merged in at the end; returns the loss of each
    optimiser step."""
    device = next(model.parameters()).device
    examples = supervised_examples(Encoder(tokenizer, format_cfg), triples[: cfg.n_tasks])
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed)).tolist()
    forward, weights = functional_forward(model), dict(model.named_parameters())
    adapter = LoraConfig(rank=cfg.lora_rank, alpha=float(cfg.lora_rank)) if cfg.lora_rank else None  # B·A, scale 1
    trained = init_factors(model, adapter, seed) if adapter else weights
    model.requires_grad_(adapter is None)
    optimizer = torch.optim.AdamW(trained.values(), lr=cfg.lr, weight_decay=0.0)
    losses = []
    model.train()
    batches = range(0, len(order), cfg.batch_size)
    for start in tqdm(batches, desc=desc, unit="step", disable=not progress, dynamic_ncols=True):
        chosen = [examples[i] for i in order[start : start + cfg.batch_size]]
        batch = TokenBatch.from_lists(
            [seq for seq, _ in chosen], tokenizer.pad_token_id, [n for _, n in chosen], device
        )
        params = merge(weights, trained, adapter.scale) if adapter else weights
        loss = lm_loss(forward, params, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained.values(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    if adapter:
        merge_into_model(model, trained, adapter)
        model.requires_grad_(True)
    model.eval()
    return losses
