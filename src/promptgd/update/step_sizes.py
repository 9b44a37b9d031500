"""Meta-learned step sizes of the inner update: θ' = θ − η ⊙ ∇θ L_LM(c; θ), η one positive number per entry.

The plain step uses one η for every weight, a compromise between tensors whose best steps differ by more than an
order of magnitude (results/studies/squad_smollm2_levers.md §10 shows what was learned on SQuAD). Here η is learned
by the outer optimiser, as in Meta-SGD (Li et al. 2017) and MAML++'s per-layer learning rates (Antoniou et al.
2019), as exp of log-scales that start at 0, so an untrained model takes exactly the plain step:
- `tensor`: η_p = lr · exp(s_p), one scale per updated tensor p;
- `factored`: for a matrix, η_ij = lr · exp(r_i) · exp(c_j), a scale per row and per column (a weight's output and
  input directions); for a vector (a norm's weight, a bias), one scale per entry.

`factored` keeps the step's low-rank form: (e^r ⊙ δ)(e^c ⊙ x)ᵀ is again an outer product for each token, so the
implicit update (update/implicit.py) applies it by scaling the layer's input by exp(c) and its term by exp(r).

Learned with the weights frozen (`train.freeze_weights`), the model at θ is the start model's: NC and Prompt are
unchanged by construction, and with one inner step the meta-gradient needs no second-order term (θ' depends on the
scales only through η, and ∇L_LM(c; θ) does not depend on them), so it costs what a first-order step does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file, save_file

from promptgd.lm import Params

Kind = Literal["tensor", "factored"]
ROWS, COLS = "@rows", "@cols"  # suffixes of a matrix's row and column log-scales in the factored kind
FILE = "inner_lr_scales.safetensors"  # beside a meta-trained model's weights: its learned log-scales


def init_log_scales(params: Params, kind: Kind) -> dict[str, torch.nn.Parameter]:
    """Zero log-scales (η = lr everywhere) for every tensor of `params`, on its device and in its dtype."""

    def zeros(*shape: int, like: torch.Tensor) -> torch.nn.Parameter:
        return torch.nn.Parameter(torch.zeros(shape, dtype=like.dtype, device=like.device))

    scales = {}
    for name, p in params.items():
        if kind == "tensor" or p.dim() == 0:
            scales[name] = zeros(like=p)
        elif p.dim() == 1:
            scales[name] = zeros(p.shape[0], like=p)
        elif p.dim() == 2:
            scales[name + ROWS] = zeros(p.shape[0], like=p)
            scales[name + COLS] = zeros(p.shape[1], like=p)
        else:
            raise ValueError(f"inner.lr_scales=factored: {name} has {p.dim()} dimensions; only vectors and matrices")
    return scales


@dataclass(frozen=True)
class StepSizes:
    """lr times the learned scales: what the inner update multiplies each tensor's gradient by. Without scales it is
    the plain step, lr everywhere (`uniform`), which the updates apply as one fused multiply-add."""

    lr: float
    log_scales: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def uniform(self) -> bool:
        return not self.log_scales

    def dense(self, name: str) -> float | torch.Tensor:
        """η for parameter `name`, broadcastable to its shape (the explicit update)."""
        if self.uniform:
            return self.lr
        if name in self.log_scales:
            return self.lr * self.log_scales[name].exp()
        return self.lr * self.log_scales[name + ROWS].exp().unsqueeze(1) * self.log_scales[name + COLS].exp()

    def factors(self, name: str) -> tuple[float | torch.Tensor, torch.Tensor | None]:
        """(η's row factor, its column factor or None) for parameter `name`: η = rows[:, None] · cols[None, :] for a
        factored matrix; otherwise `rows` is η itself (a scalar, or one per entry of a vector) and cols None."""
        if self.uniform:
            return self.lr, None
        if name in self.log_scales:
            return self.lr * self.log_scales[name].exp(), None
        return self.lr * self.log_scales[name + ROWS].exp(), self.log_scales[name + COLS].exp()


def save_log_scales(log_scales: dict[str, torch.Tensor], model_dir: Path) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in log_scales.items()}, str(model_dir / FILE))


def load_log_scales(model_dir: Path, device: torch.device) -> dict[str, torch.Tensor] | None:
    """The log-scales saved in `model_dir`, or None when it has none."""
    path = model_dir / FILE
    return load_file(str(path), device=str(device)) if path.is_file() else None
