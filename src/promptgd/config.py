"""Typed, frozen run configuration: YAML presets plus dotted CLI overrides, strictly checked.

Every field is documented once, beside its definition. Unknown keys and values of the wrong type raise
ConfigError naming the key path (and the YAML file when one is involved).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from promptgd.errors import UserError


@dataclass(frozen=True)
class ModelConfig:
    spec: str = "packaged:smollm2-135m"  # hub id, local HF dir, `packaged:smollm2-135m` or `tiny:<name>`
    dtype: Literal["float32", "float64", "bfloat16"] = "float32"  # parameter dtype; float32 is safe for 2nd order
    device: str = "auto"  # "auto" picks cuda when available, else cpu
    tf32: bool = False  # float32 matrix products on CUDA in TF32 (10-bit mantissa): several times the matmul throughput on Ampere or newer, ~1e-3 relative error per product; float32 only; no effect on CPU. Checked: tests/test_tf32.py holds the TF32 meta-gradient to the float64 one, which matches finite differences (tests/test_metagrad.py)


@dataclass(frozen=True)
class TaskConfig:
    name: str = "character_descriptions"  # registry name (`promptgd tasks`) or `jsonl:<path>`
    n_train: int = 5000  # training triples to build or sample; 0 = all
    n_test: int = 500  # test triples; 0 = all
    n_val: int = 100  # validation triples, the last whole contexts of the train split (data/partition.py): where every hyper-parameter is chosen; disjoint from warm-up and meta-training
    seed: int = 0  # seeds the generator / sampler, so splits are reproducible; real-text data comes from
    # $PROMPTGD_DATA, the cache filled by `promptgd data fetch TASK --path P`, or the hub (see data/acquire.py)


@dataclass(frozen=True)
class FormatConfig:
    separator: str = "\n"  # placed between context and query in Prompt mode
    answer_end: str = "\n"  # appended to responses in training so the model learns where answers stop


@dataclass(frozen=True)
class InnerConfig:
    lr: float = 1e-3  # η: plain-SGD learning rate of the update on the context
    steps: int = 1  # SGD steps on the context
    contexts: int = 1  # k contexts absorbed per update (the paper's multi-context study)
    mode: Literal["batched", "sequential"] = "batched"  # k contexts: one step on their mean loss, or k steps
    implementation: Literal["implicit", "explicit"] = (
        "implicit"  # implicit: θ' as per-task low-rank terms (LoRA-inner: per-task factors) added in forward hooks, many tasks per pass (update/implicit.py, update/implicit_lora.py); explicit: a copy of the weights per task (update/inner.py), the reference. Evaluation with steps > 1 always uses explicit (implicit memory grows with steps × context tokens)
    )
    lr_scales: Literal["none", "tensor", "factored"] = (
        "none"  # meta-learn the step's size (update/step_sizes.py): none = inner.lr everywhere; tensor = inner.lr times a learned scale per tensor; factored = per entry, a learned scale per row times one per column of each matrix (one per entry of a vector). Scales start at 1 (the plain step), train at train.lr_scales_lr, and are saved with the model (inner_lr_scales.safetensors), which every FT evaluation of it then uses; lora.variant=none only
    )


@dataclass(frozen=True)
class EvalConfig:
    modes: tuple[Literal["nc", "prompt", "ft", "ft_irrelevant"], ...] = (
        "nc",
        "prompt",
        "ft",
        "ft_irrelevant",
    )  # which modes to run, in order
    split: Literal["test", "val", "meta", "warmup", "ood"] = (
        "test"  # the triples evaluated: test for reported numbers, val for choosing settings, ood for held-out description families (data/partition.py)
    )
    limit: int = 0  # evaluate only the first N triples of the split; 0 = all
    max_new_tokens: int = 24  # greedy decoding budget; answers stop earlier at a newline or EOS
    batch_size: int = 16  # triples per batch in the modes that share weights (NC, Prompt)
    pass_tokens: int = 1024  # implicit FT evaluation: the contexts absorbed together in one pass hold at most this many tokens (at least one context each); the pass keeps every context token's factors (~1.3 MB per token at SmolLM2-135M, ~3.7 MB resident with the step's transients), so memory follows it


@dataclass(frozen=True)
class WarmupConfig:
    n_tasks: int = 0  # training triples for the format warm-up (0 = none); each is seen in Prompt and NC format
    lr: float = 1e-5  # AdamW learning rate of the warm-up fine-tune
    batch_size: int = 8  # sequences per optimiser step


@dataclass(frozen=True)
class TrainConfig:
    objective: Literal["lc", "lg"] = "lc"  # learn from conditioning (teacher KL) or from gold labels (NLL)
    first_order: bool = False  # drop the second-order term of the inner step (cheaper ablation)
    n_tasks: int = 0  # meta-training tasks to use (0 = every training triple); one epoch over them
    epochs: int = 1  # passes over the tasks
    batch_size: int = 4  # tasks per outer step; gradients are accumulated pass by pass, so memory stays flat
    fsdp: bool = False  # under torchrun, shard weights, gradients and Adam state over the processes with FSDP2 (train/fsdp.py): for models whose training state does not fit one device; full rank and the implicit inner update only; one process ignores it
    freeze_weights: bool = False  # meta-learn only inner.lr_scales: the weights stay the start model's, so NC and Prompt are unchanged by construction; the terms that do not involve the step (λ·L_LM, μ·Prompt, transfer) are then constant and skipped
    lr_scales_lr: float = 1.0e-2  # outer Adam learning rate of inner.lr_scales' log-scales (Adam moves each by about this much per step, so a weight's 1e-5 would leave them at 1)
    gradient_sinks: bool = True  # implicit inner update, full rank, unsharded: each use of a weight adds its meta-gradient to .grad at once instead of autograd summing the uses first (update/gradient_sinks.py), so passes after an outer step's first cost no extra copy of the weights; the same gradient, summed in another order
    pass_tokens: int = 512  # implicit inner update: an outer step's tasks go through the model together in passes of at most this many context and query tokens (at least one task each); memory grows with it, not with batch_size
    lr: float = 1e-5  # outer Adam learning rate
    lr_schedule: Literal["constant", "cosine"] = "cosine"  # after `warmup_steps` of linear ramp-up
    warmup_steps: int = 10  # linear learning-rate ramp at the start of meta-training
    weight_decay: float = 0.0  # Adam(W) weight decay on the meta-parameters
    clip_norm: float = 1.0  # global gradient-norm clip; 0 disables
    lm_weight: float = 0.1  # λ: weight of the generic-text LM loss that preserves language modelling
    prompt_weight: float = 0.0  # μ: weight of the same answer loss in Prompt mode at θ (c ⊕ q, no update), which keeps Prompt accuracy from eroding; 0 = the paper's objective
    lm_corpus: str = "builtin"  # `builtin`, a text file path, or `wikitext:<dir>` for the tokenized release
    lm_seq_len: int = 128  # tokens per generic-text chunk
    val_every: int = 50  # outer steps between held-out FT evaluations; 0 disables
    val_size: int = 50  # how many triples of the validation split (its first N) those evaluations read; 0 = all
    ckpt_every: int = 100  # outer steps between resumable checkpoints; 0 = only at the end
    log_every: int = 1  # outer steps between metrics.jsonl rows
    max_skipped_share: float = 1.0  # the run fails, saving no model, when at least this share of its steps was skipped for a non-finite loss or gradient; 1.0 = only when every step was
    log: tuple[
        Literal["tensorboard", "wandb"], ...
    ] = ()  # where the same rows also go besides metrics.jsonl (always written): TensorBoard event files in OUT/tensorboard/, a W&B run in OUT/wandb/ (offline unless WANDB_MODE=online); needs `pip install 'promptgd[logging]'`
    seed: int = 0  # seeds data order and any sampling during training


@dataclass(frozen=True)
class LoraConfig:
    variant: Literal["none", "outer", "inner"] = (
        "none"  # none: meta-learn every weight; outer: a LoRA delta, full inner step; inner: LoRA init, inner step on the factors
    )
    rank: int = 1  # r of every factored matrix (the paper uses 1)
    alpha: float = 1.0  # delta = (alpha / rank) · B·A, as in PEFT
    meta_learn_b: bool = True  # variant=inner: meta-learn B as well as A; false keeps B = 0 at θ, so NC and Prompt stay the start model's exactly and only the inner step writes B (along the input directions the meta-learnt A picks)
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )  # Linear layer names to factor

    @property
    def scale(self) -> float:
        return self.alpha / self.rank if self.rank else 0.0


@dataclass(frozen=True)
class TransferConfig:
    mode: Literal["none", "sequential", "joint"] = (
        "none"  # cross-task study (Table 3): sequential = meta-train on task, then ordinary fine-tune on `task_b`; joint = that fine-tuning loss on task_b inside every outer step
    )
    task_b: str = "reversal"  # the second task (registry name or `jsonl:<path>`); its train split is fine-tuned on, its test split measures transfer
    n_tasks: int = 200  # task-B training triples for the ordinary fine-tune (each in Prompt and NC format)
    lr: float = 3.0e-5  # sequential: AdamW learning rate of the fine-tune on task B
    batch_size: int = 8  # sequences per fine-tuning batch (sequential step, or joint term per outer step)
    weight: float = 1.0  # joint: weight of task B's fine-tuning loss in the outer loss


@dataclass(frozen=True)
class PipelineConfig:
    objectives: tuple[Literal["lc", "lg"], ...] = (
        "lc",
    )  # `promptgd run` meta-trains one model per objective (lc, lg) and compares them


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    format: FormatConfig = field(default_factory=FormatConfig)
    inner: InnerConfig = field(default_factory=InnerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


class ConfigError(UserError, ValueError):
    """A config key that does not exist or a value of the wrong type; the message names the key."""


def _check_value(value: Any, annotation: Any, key: str) -> Any:
    """Return `value` converted to `annotation` where that is lossless, else raise ConfigError naming `key`."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        if value not in typing.get_args(annotation):
            raise ConfigError(f"{key}: {value!r} is not one of {list(typing.get_args(annotation))}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(annotation):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check_value(value, option, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: {value!r} matches none of {annotation}")
    if origin is tuple:
        if isinstance(value, str):  # `eval.modes=nc,ft` on the command line
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (item_type, _ellipsis) = typing.get_args(annotation)
        return tuple(_check_value(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if is_dataclass(annotation):
        return _build(annotation, value, key + ".")
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        # YAML 1.1 reads `1e-3` (no dot) as a string; accept it only if it really is a number.
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected float, got str {value!r}") from None
    if annotation is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
    if not isinstance(value, annotation) or (annotation is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {annotation.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, data: Any, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or '<root>'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key {prefix + unknown[0]!r}; {cls.__name__} has: {', '.join(sorted(names))}")
    kwargs = {k: _check_value(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _dotted_to_nested(overrides: list[str]) -> dict:
    nested: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, under: dict | None = None
) -> RunConfig:
    """Defaults, then `under` (nested sections, e.g. a meta-trained model's update recipe), then the YAML preset at
    `path` (which may name a `base:` preset), then dotted overrides."""
    data: dict = dict(under or {})
    if path is not None:
        data = _merge(data, _read_yaml(Path(path)))
    data = _merge(data, _dotted_to_nested(overrides or []))
    where = f"{path}: " if path is not None else ""
    try:
        return _check_ranges(_build(RunConfig, data))
    except ConfigError as e:
        raise ConfigError(f"{where}{e}") from None


# Allowed values beyond their types, checked when a config is built: a bad value fails at once, naming its key,
# instead of deep inside a run (a zero batch, a negative or NaN learning rate).
POSITIVE = ("train.lr", "train.lr_scales_lr", "warmup.lr", "transfer.lr", "lora.alpha")
AT_LEAST_ONE = (
    "inner.steps", "inner.contexts", "eval.max_new_tokens", "eval.batch_size", "eval.pass_tokens", "warmup.batch_size", "train.epochs",
    "train.batch_size", "train.pass_tokens", "train.log_every", "transfer.batch_size",
)  # fmt: skip
NON_NEGATIVE = (
    "inner.lr", "task.n_train", "task.n_test", "task.n_val", "eval.limit", "warmup.n_tasks", "train.n_tasks", "train.warmup_steps",
    "train.weight_decay", "train.clip_norm", "train.lm_weight", "train.prompt_weight", "train.val_every",
    "train.val_size", "train.ckpt_every", "lora.rank", "transfer.n_tasks", "transfer.weight",
)  # fmt: skip


def _check_ranges(config: RunConfig) -> RunConfig:
    def value(key: str):
        section, name = key.split(".")
        return getattr(getattr(config, section), name)

    for keys, ok, wanted in (
        (POSITIVE, lambda v: v > 0, "a finite number > 0"),
        (AT_LEAST_ONE, lambda v: v >= 1, "at least 1"),
        (NON_NEGATIVE, lambda v: v >= 0, "a finite number >= 0"),
        (("train.lm_seq_len",), lambda v: v >= 2, "at least 2 (one token predicts the next)"),
        (("train.max_skipped_share",), lambda v: 0 < v <= 1, "in (0, 1]"),
    ):
        for key in keys:
            v = value(key)
            if not (math.isfinite(v) and ok(v)):
                raise ConfigError(f"{key}={v!r}: must be {wanted}")
    train, lora = config.train, config.lora
    if config.model.tf32 and config.model.dtype != "float32":
        raise ConfigError(f"model.tf32=true is for float32 weights, got model.dtype={config.model.dtype}")
    if config.transfer.mode == "sequential" and lora.variant != "none":
        raise ConfigError(
            "transfer.mode=sequential fine-tunes the full weights after meta-training; use it with lora.variant=none"
        )
    if not lora.meta_learn_b and lora.variant != "inner":
        raise ConfigError(f"lora.meta_learn_b=false is for lora.variant=inner, got lora.variant={lora.variant}")
    if config.inner.lr_scales != "none" and lora.variant != "none":
        raise ConfigError(f"inner.lr_scales is for lora.variant=none, got lora.variant={lora.variant}")
    if train.freeze_weights and config.inner.lr_scales == "none":
        raise ConfigError(
            "train.freeze_weights=true meta-learns only inner.lr_scales: set inner.lr_scales=tensor or factored"
        )
    if config.inner.lr_scales != "none" and train.fsdp:
        raise ConfigError("inner.lr_scales: not with train.fsdp=true (the learned scales are not sharded)")
    if train.fsdp and (lora.variant != "none" or config.inner.implementation != "implicit"):
        # A sharded model cannot be called on other weights (functional_call would hand its layers the shards), so
        # θ' must never be materialised, and LoRA merges its factors into the weights in exactly such a call.
        raise ConfigError(
            f"train.fsdp=true needs lora.variant=none and inner.implementation=implicit, "
            f"got lora.variant={lora.variant}, inner.implementation={config.inner.implementation}"
        )
    return config


def _read_yaml(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    if path.resolve() in chain:
        raise ConfigError(f"{path}: `base:` chain comes back to itself ({' -> '.join(str(p) for p in (*chain, path))})")
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    base = data.pop("base", None)
    if base is not None:
        data = _merge(_read_yaml(path.parent / base, (*chain, path.resolve())), data)
    return data


def to_dict(config: Any) -> dict:
    """Plain dict (tuples as lists) for YAML/JSON dumps; `_build(RunConfig, to_dict(c)) == c`."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


def dump_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def from_dict(data: dict) -> RunConfig:
    return _check_ranges(_build(RunConfig, data))


def with_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    return _check_ranges(_build(RunConfig, _merge(to_dict(config), _dotted_to_nested(overrides))))


__all__ = ["RunConfig", "ConfigError", "load_config", "dump_yaml", "from_dict", "with_overrides", "replace"]
