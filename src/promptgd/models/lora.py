"""LoRA meta-parameterizations (the paper's LoRA variants), as other `Parameterization`s of the same model.

- `lora_outer`: meta-learn a rank-r delta ΔW = s·B·A on the target matrices; the inner step still updates
  every weight of the merged model W + ΔW (a "full inner step").
- `lora_inner`: meta-learn the LoRA factors themselves as an initialisation; the inner step updates only
  the factors, so the stored knowledge lives in a rank-r update. With `meta_learn_b=False` only A is meta-learnt
  and B stays 0 at θ: the model without an update is the start model, and the inner step writes B along A.

Factors follow PEFT's convention (A: [r, in] Kaiming-uniform, B: [out, r] zeros, s = alpha / r), so the
delta starts at exactly zero and adapters save and load with `peft.PeftModel`.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file

from promptgd.config import LoraConfig
from promptgd.lm import Params
from promptgd.models.parameterization import Parameterization

ADAPTER_DIR = "adapter"  # where a run's model directory keeps its PEFT adapter (lora_inner)


def target_modules(model: torch.nn.Module, cfg: LoraConfig) -> list[str]:
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in cfg.target_modules
    ]
    if not names:
        raise ValueError(
            f"lora.target_modules {list(cfg.target_modules)} match no Linear layer of {type(model).__name__}"
        )
    return names


def init_factors(model: torch.nn.Module, cfg: LoraConfig, seed: int = 0) -> dict[str, torch.nn.Parameter]:
    """`<module>.lora_A` [r, in] and `<module>.lora_B` [out, r] for every target module; B = 0."""
    factors = {}
    generator = torch.Generator().manual_seed(seed)
    for name in target_modules(model, cfg):
        weight = model.get_submodule(name).weight
        a = torch.empty(cfg.rank, weight.shape[1], dtype=weight.dtype)
        bound = 1 / math.sqrt(weight.shape[1])  # kaiming_uniform_(a=sqrt(5)) as PEFT, drawn from our generator
        a.uniform_(-bound, bound, generator=generator)
        factors[f"{name}.lora_A"] = torch.nn.Parameter(a.to(weight.device))
        factors[f"{name}.lora_B"] = torch.nn.Parameter(
            torch.zeros(weight.shape[0], cfg.rank, dtype=weight.dtype, device=weight.device)
        )
    return factors


def merge(base: Params, factors: Params, scale: float) -> Params:
    """The model's parameter dict with W + s·B·A on every factored module."""
    merged = dict(base)
    for key in factors:
        if key.endswith(".lora_A"):
            module = key.removesuffix(".lora_A")
            merged[f"{module}.weight"] = base[f"{module}.weight"] + scale * factors[f"{module}.lora_B"] @ factors[key]
    return merged


def lora_outer(model: torch.nn.Module, factors: dict[str, torch.nn.Parameter], cfg: LoraConfig) -> Parameterization:
    model.requires_grad_(False)  # the base weights are not meta-learned ...
    base = dict(model.named_parameters())

    def fast() -> Params:
        # ... but the inner step differentiates w.r.t. all of them: fresh leaves that share their storage.
        leaves = {name: p.detach().requires_grad_() for name, p in base.items()}
        return merge(leaves, factors, cfg.scale)

    return Parameterization(model=model, trainable=factors, fast=fast)


def lora_inner(model: torch.nn.Module, factors: dict[str, torch.nn.Parameter], cfg: LoraConfig) -> Parameterization:
    model.requires_grad_(False)
    base = dict(model.named_parameters())
    if cfg.meta_learn_b:
        trainable, fast = factors, lambda: factors
    else:
        # B stays 0 at θ. The inner step still differentiates w.r.t. B: it gets fresh leaves sharing B's storage
        # each task, so the outer backward's gradient for B lands on those and is dropped.
        trainable = {k: v for k, v in factors.items() if k.endswith(".lora_A")}

        def fast() -> Params:
            return {k: v if k in trainable else v.detach().requires_grad_() for k, v in factors.items()}

    return Parameterization(
        model=model,
        trainable=trainable,
        fast=fast,
        to_model=lambda params: merge(base, params, cfg.scale),
        lora_inner_scale=cfg.scale,
    )


@torch.no_grad()
def merge_into_model(model: torch.nn.Module, factors: Params, cfg: LoraConfig) -> None:
    """Fold the delta into the model's own weights (for saving lora_outer as a plain HF checkpoint)."""
    for key, a in factors.items():
        if key.endswith(".lora_A"):
            module = key.removesuffix(".lora_A")
            model.get_submodule(module).weight += cfg.scale * factors[f"{module}.lora_B"] @ a


def save_adapter(model: torch.nn.Module, factors: Params, cfg: LoraConfig, path: Path, base_name: str) -> None:
    """Write a PEFT adapter (adapter_config.json + adapter_model.safetensors) that PeftModel loads."""
    from peft import LoraConfig as PeftLoraConfig  # imported here: PEFT takes a second to import, only saving needs it
    from peft import get_peft_model

    peft_model = get_peft_model(
        copy.deepcopy(model),
        PeftLoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, target_modules=list(cfg.target_modules), lora_dropout=0.0),
    )
    # PEFT records the in-memory model's name_or_path (empty for a model built or converted here).
    peft_model.peft_config["default"].base_model_name_or_path = base_name
    with torch.no_grad():
        for key, value in factors.items():
            module, which = key.rsplit(".", 1)
            getattr(peft_model.base_model.model.get_submodule(module), which)["default"].weight.copy_(value)
    peft_model.save_pretrained(
        path, save_embedding_layers=False
    )  # LoRA never touches embeddings; "auto" would query the hub


def load_adapter(model: torch.nn.Module, path: Path) -> tuple[dict[str, torch.nn.Parameter], LoraConfig]:
    """Factors and LoRA config from a PEFT adapter directory saved by `save_adapter` (or by PEFT)."""
    peft_cfg = json.loads((path / "adapter_config.json").read_text())
    cfg = LoraConfig(
        rank=peft_cfg["r"],
        alpha=float(peft_cfg["lora_alpha"]),
        target_modules=tuple(sorted(peft_cfg["target_modules"])),
    )
    device = next(model.parameters()).device
    factors = {}
    for key, value in load_file(path / "adapter_model.safetensors").items():
        # PEFT keys: base_model.model.<module>.lora_A.weight
        module_key = key.removeprefix("base_model.model.").removesuffix(".weight")
        factors[module_key] = torch.nn.Parameter(value.to(device))
    return factors, cfg
