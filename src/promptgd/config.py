"""Typed, frozen run configuration: YAML presets plus dotted CLI overrides, strictly checked.

Every field is documented once, by the docstring under it. In each section the fields that change results come first,
then those that change only speed or memory (SPEED_ONLY lists them and names the tests that hold them to that).
Unknown keys and values of the wrong type raise ConfigError naming the key path (and the YAML file when one is
involved). So do values out of range, which each section checks in its __post_init__, and settings of two sections
that cannot run together, which RunConfig.__post_init__ checks: a bad value fails when the config is made (loaded,
overridden or `dataclasses.replace`d), not deep inside a run.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from promptgd.errors import UserError


class ConfigError(UserError, ValueError):
    """A config key that does not exist or a value of the wrong type or range; the message names the key."""


def _require(config: Any, section: str, positive=(), at_least_one=(), non_negative=()) -> None:
    """Raise ConfigError naming `section.field` for the first field listed that is not a finite number > 0, >= 1 or
    >= 0 respectively (a zero batch or a negative or NaN learning rate would otherwise fail deep inside a run)."""
    for names, ok, wanted in (
        (positive, lambda v: v > 0, "a finite number > 0"),
        (at_least_one, lambda v: v >= 1, "at least 1"),
        (non_negative, lambda v: v >= 0, "a finite number >= 0"),
    ):
        for name in names:
            v = getattr(config, name)
            if not (math.isfinite(v) and ok(v)):
                raise ConfigError(f"{section}.{name}={v!r}: must be {wanted}")


@dataclass(frozen=True)
class ModelConfig:
    spec: str = "packaged:smollm2-135m"
    """The start model: a hub id, a local Hugging Face directory, `packaged:smollm2-135m` or `tiny:<name>`."""
    dtype: Literal["float32", "float64", "bfloat16"] = "float32"
    """Parameter dtype. float32 keeps the second-order term of the meta-gradient accurate."""
    tf32: bool = False
    """float32 matrix products on CUDA in TF32 (10-bit mantissa): several times the matmul throughput on Ampere or
    newer, at about 1e-3 relative error per product, so results move slightly. float32 weights only; no effect on CPU.
    tests/test_tf32.py holds the TF32 meta-gradient to the float64 one, which matches finite differences
    (tests/test_metagrad.py)."""

    # Speed and memory only: these never change a result beyond float rounding (see SPEED_ONLY).
    device: str = "auto"
    """Where the model runs: "auto" picks CUDA when available, else CPU."""

    def __post_init__(self) -> None:
        if self.tf32 and self.dtype != "float32":
            raise ConfigError(f"model.tf32=true is for float32 weights, got model.dtype={self.dtype}")


@dataclass(frozen=True)
class MixedTask:
    """One task of a mixture (task.mixture): its own sizes and Prompt separator, cut by data/partition.py as a run of
    that task alone would be."""

    name: str
    """A registry name or `jsonl:<path>` (not another mixture)."""
    n_train: int = 5000
    """Training triples to build or sample; 0 = all."""
    n_test: int = 500
    """Test triples; 0 = all."""
    n_val: int = 100
    """Validation triples, the last whole contexts of this task's train split."""
    n_warmup: int = 0
    """Triples cut for the format warm-up from the front of this task's train split (warmup.n_tasks then takes from
    all tasks' together)."""
    n_meta: int = 0
    """Meta-training triples from this task, the first of those left between warm-up and validation (0 = all): the
    mixture's proportions."""
    separator: str | None = None
    """Placed between context and query in Prompt mode for this task's triples (WikiText's queries continue the
    context after a space); None: format.separator."""

    def __post_init__(self) -> None:
        _require(self, f"task.mixture[{self.name}]", non_negative=("n_train", "n_test", "n_val", "n_warmup", "n_meta"))
        if self.name == "mixture":
            raise ConfigError("task.mixture: an entry cannot itself be a mixture")


@dataclass(frozen=True)
class TaskConfig:
    name: str = "character_descriptions"
    """The task: a registry name (`promptgd tasks` lists them), `jsonl:<path>`, or `mixture` (task.mixture)."""
    n_train: int = 5000
    """Training triples to build or sample; 0 = all."""
    n_test: int = 500
    """Test triples; 0 = all."""
    n_val: int = 100
    """Validation triples: the last whole contexts of the train split (data/partition.py), disjoint from warm-up and
    meta-training. Every hyper-parameter is chosen on them."""
    seed: int = 0
    """Seeds the generator or sampler, so the splits are reproducible. Real-text data comes from $PROMPTGD_DATA, the
    cache that `promptgd data fetch TASK --path P` fills, or the hub (data/acquire.py)."""

    mixture: tuple[MixedTask, ...] = ()
    """With name `mixture`: the tasks trained on together. Each is partitioned alone (its own sizes, so the triples a
    task's own runs validate and test on stay out of training), then every split interleaves the tasks in proportion
    to their sizes, so any front of a split (train.n_tasks, warmup.n_tasks) keeps each task's share; training then
    draws the tasks in a seeded random order. A training triple of one task that another validates or tests on (the
    people tasks share people) is refused. task.n_train, n_test and n_val are then unused and must be 0."""

    def __post_init__(self) -> None:
        _require(self, "task", non_negative=("n_train", "n_test", "n_val"))
        if (self.name == "mixture") != bool(self.mixture):
            raise ConfigError("task.mixture: set it together with task.name=mixture (and only then)")
        if self.mixture and (self.n_train or self.n_test or self.n_val):
            raise ConfigError(
                "task.mixture: each entry sets its own n_train, n_test and n_val; set task.n_train, task.n_test "
                f"and task.n_val to 0 (got {self.n_train}, {self.n_test}, {self.n_val})"
            )


@dataclass(frozen=True)
class FormatConfig:
    separator: str = "\n"
    """Placed between context and query in Prompt mode."""
    answer_end: str = "\n"
    """Appended to responses in training, so the model learns where answers stop."""


@dataclass(frozen=True)
class InnerConfig:
    lr: float = 1e-3
    """η: plain-SGD learning rate of the update on the context."""
    steps: int = 1
    """SGD steps on the context."""
    contexts: int = 1
    """k: contexts absorbed per update (the paper's multi-context study)."""
    mode: Literal["batched", "sequential"] = "batched"
    """With k contexts: `batched` takes inner.steps steps on their mean loss, `sequential` inner.steps steps on each
    context in turn."""
    lr_scales: Literal["none", "tensor", "factored"] = "none"
    """Meta-learn the step's size (update/step_sizes.py). `none`: inner.lr everywhere; `tensor`: inner.lr times a
    learned scale per tensor; `factored`: per entry, a learned scale per row times one per column of each matrix (one
    per entry of a vector). The scales start at 1 (the plain step), train at train.lr_scales_lr and are saved with the
    model (inner_lr_scales.safetensors), so every FT evaluation of it uses them. lora.variant=none only."""
    guard: Literal["none", "stop", "halve"] = "none"
    """What evaluation and `promptgd absorb` do when a step raises the loss of the contexts it was taken on (a
    diverging update, which then answers in degenerate text): `none` keeps the step (the paper's update); `stop` goes
    back to the iterate before it and stops; `halve` retakes it at half the size, up to five times, then stops. A
    guarded update runs explicitly (update/explicit.py `guarded_update`); meta-training never guards."""

    # Speed and memory only: these never change a result beyond float rounding (see SPEED_ONLY).
    implementation: Literal["implicit", "explicit"] = "implicit"
    """`implicit`: θ' as per-task low-rank terms (LoRA inner: per-task factors) added in forward hooks, many tasks per
    pass (update/implicit.py, update/implicit_lora.py); `explicit`: a copy of the weights per task (update/explicit.py),
    the reference. Evaluation with steps > 1 always uses explicit, as implicit memory grows with steps × context
    tokens."""

    def __post_init__(self) -> None:
        _require(self, "inner", at_least_one=("steps", "contexts"), non_negative=("lr",))


@dataclass(frozen=True)
class EvalConfig:
    modes: tuple[
        Literal[
            "nc",
            "prompt",
            "ft",
            "ft_irrelevant",
            "ft_stream",
            "prompt_stream",
            "finetuned",
            "prompt_bm25",
            "prompt_all",
        ],
        ...,
    ] = (
        "nc",
        "prompt",
        "ft",
        "ft_irrelevant",
    )
    """Which modes to run, in order. `ft_stream` absorbs the split's documents one after another into one model and
    asks every question at the end (evaluate/stream.py); `prompt_stream`, listed after it, asks them of that streamed
    model with each question's own document in the prompt (does it still read?); `prompt_bm25` and `prompt_all` put in
    the prompt the document BM25 retrieves for the question among those documents, or all of them
    (evaluate/retrieval.py); `finetuned` asks after ordinary fine-tuning on them (the streams' baseline)."""
    split: Literal["test", "val", "meta", "warmup", "ood"] = "test"
    """The triples evaluated: `test` for reported numbers, `val` for choosing settings, `ood` for held-out description
    families (data/partition.py)."""
    limit: int = 0
    """Evaluate only the first N triples of the split; 0 = all."""
    max_new_tokens: int = 24
    """Greedy decoding budget; answers stop earlier at a newline or EOS."""
    stream: int = 0
    """`ft_stream`: how many documents (distinct contexts) of the split the stream absorbs; 0 = all."""
    stream_seed: int = 0
    """`ft_stream`: seeds the order in which the documents are absorbed."""
    stream_mode: Literal["sequential", "at_theta"] = "sequential"
    """`ft_stream`: `sequential` takes each document's update from the previous one's θ'; `at_theta` takes every
    document's update at θ and applies them all together (their sum)."""
    stream_probes: tuple[int, ...] = (10, 100, 1000)
    """`ft_stream`: after this many documents the first 10 documents' questions are asked again (and at the end)."""
    finetune_epochs: int = 3
    """`finetuned`: passes of ordinary fine-tuning over the stream's documents."""
    finetune_lr: float = 1e-5
    """`finetuned`: AdamW learning rate of that fine-tuning, to be chosen on a validation stream like any η."""
    locality_corpus: str = "none"
    """`ft_stream`: held-out text whose per-token NLL before and after the stream measures what the updates cost
    (`wikitext:<dir>` reads the release's test split, which no λ corpus reads; `builtin`, a file, or `none`)."""

    # Speed and memory only: these never change a result beyond float rounding (see SPEED_ONLY).
    batch_size: int = 16
    """Triples per batch in the modes that share weights (NC, Prompt), and questions per pass of implicit FT
    evaluation."""
    pass_tokens: int = 1024
    """Implicit FT evaluation: the contexts absorbed together in one pass hold at most this many tokens (at least one
    context each). The pass keeps the factors of every context token, so its memory grows in proportion."""

    def __post_init__(self) -> None:
        _require(
            self,
            "eval",
            positive=("finetune_lr",),
            at_least_one=("max_new_tokens", "batch_size", "pass_tokens", "finetune_epochs"),
            non_negative=("limit", "stream"),
        )
        if "prompt_stream" in self.modes and "ft_stream" not in self.modes[: self.modes.index("prompt_stream")]:
            raise ConfigError("eval.modes: prompt_stream asks the model ft_stream leaves; list ft_stream before it")


@dataclass(frozen=True)
class WarmupConfig:
    n_tasks: int = 0
    """Training triples for the format warm-up (0 = none); each is seen in Prompt and NC format."""
    lr: float = 1e-5
    """AdamW learning rate of the warm-up fine-tune."""
    batch_size: int = 8
    """Sequences per optimiser step."""
    lora_rank: int = 0
    """0: fine-tune every weight. r > 0: train only a rank-r delta B·A on every attention and MLP projection (q, k, v,
    o, gate, up, down; the run's lora.* settings are for meta-training and play no part), merged into the weights at
    the end: the start model then differs from the loaded one by a rank-r change per matrix, which `promptgd pack`
    stores in a few MB (a packaged absorber's format adapter)."""

    def __post_init__(self) -> None:
        _require(self, "warmup", positive=("lr",), at_least_one=("batch_size",), non_negative=("n_tasks", "lora_rank"))


@dataclass(frozen=True)
class TrainConfig:
    objective: Literal["lc", "lg"] = "lc"
    """Learn from conditioning (`lc`: KL to the teacher) or from gold labels (`lg`: NLL)."""
    first_order: bool = False
    """Drop the second-order term of the inner step: a cheaper ablation that changes the meta-gradient."""
    n_tasks: int = 0
    """Meta-training triples to use (0 = every training triple); with inner.contexts = k, k consecutive triples make
    one task (k contexts absorbed, k queries asked), so an outer step reads train.batch_size × k of them."""
    epochs: int = 1
    """Passes over the tasks."""
    batch_size: int = 4
    """Tasks per outer step. Gradients are accumulated pass by pass (train.pass_tokens), so memory does not grow with
    it."""
    freeze_weights: bool = False
    """Meta-learn only inner.lr_scales. The weights stay the start model's, so NC and Prompt are unchanged by
    construction; the terms that do not involve the step (λ·L_LM, μ·Prompt, transfer) are then constant and
    skipped."""
    lr_scales_lr: float = 1.0e-2
    """Outer Adam learning rate of inner.lr_scales' log-scales. Adam moves each by about its learning rate per step,
    so the weights' train.lr would leave the scales at 1; the default was chosen on SQuAD's validation split
    (results/studies/squad_smollm2_levers.md)."""
    lr: float = 1e-5
    """Outer Adam learning rate of the meta-parameters (the weights, or the LoRA factors)."""
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    """The learning rate's course after the linear ramp of train.warmup_steps."""
    warmup_steps: int = 10
    """Outer steps of linear learning-rate ramp at the start of meta-training."""
    weight_decay: float = 0.0
    """Adam(W) weight decay on the meta-parameters."""
    clip_norm: float = 1.0
    """Global gradient-norm clip; 0 disables it."""
    lm_weight: float = 0.1
    """λ: weight of the generic-text LM loss, which preserves language modelling."""
    prompt_weight: float = 0.0
    """μ: weight of the same answer loss in Prompt mode at θ (c ⊕ q, no update), which keeps Prompt accuracy from
    eroding; 0 = the paper's objective."""
    lm_corpus: str = "builtin"
    """Generic text of the LM loss: `builtin`, a text file path, or `wikitext:<dir>` for the tokenized release."""
    lm_seq_len: int = 128
    """Tokens per generic-text chunk."""
    val_every: int = 50
    """Outer steps between FT and Prompt evaluations on the validation split (always one at the end); 0 disables them.
    Not speed-only, although the trained model is the same: it sets which validation numbers metrics.jsonl holds, and
    settings are chosen by those."""
    val_size: int = 50
    """How many triples of the validation split (its first N) those evaluations read; 0 = all. Not speed-only for the
    same reason: it changes the validation numbers, though not the trained model."""
    max_skipped_share: float = 1.0
    """The run fails, saving no model, when at least this share of its steps was skipped for a non-finite loss or
    gradient; 1.0 = only when every step was."""
    seed: int = 0
    """Seeds the data order and any sampling during training."""

    # Speed and memory only: these never change a result beyond float rounding (see SPEED_ONLY).
    pass_tokens: int = 512
    """Implicit inner update: an outer step's tasks go through the model together in passes of at most this many
    (padded) context and query tokens, at least one task each. Memory grows with it, not with train.batch_size."""
    gradient_sinks: bool = True
    """Implicit inner update, full rank, unsharded: each use of a weight adds its meta-gradient to .grad at once
    instead of autograd summing the uses first (update/gradient_sinks.py), so the passes after an outer step's first
    cost no extra copy of the weights. The same gradient, summed in another order."""
    fsdp: bool = False
    """Under torchrun, shard weights, gradients and Adam state over the processes with FSDP2 (train/fsdp.py), for
    models whose training state does not fit one device. Full rank and the implicit inner update only; a single
    process ignores it."""
    log: tuple[Literal["tensorboard", "wandb"], ...] = ()
    """Where the rows of metrics.jsonl (always written) also go: TensorBoard event files in OUT/tensorboard/, a W&B
    run in OUT/wandb/ (offline unless WANDB_MODE=online). Needs `pip install 'promptgd[logging]'`."""
    log_every: int = 1
    """Outer steps between metrics.jsonl rows; rows with validation numbers, and the last, are always written."""
    ckpt_every: int = 100
    """Outer steps between resumable checkpoints; 0 = only at the end. Resuming gives the uninterrupted run."""

    def __post_init__(self) -> None:
        _require(
            self,
            "train",
            positive=("lr", "lr_scales_lr"),
            at_least_one=("epochs", "batch_size", "pass_tokens", "log_every"),
            non_negative=(
                "n_tasks",
                "warmup_steps",
                "weight_decay",
                "clip_norm",
                "lm_weight",
                "prompt_weight",
                "val_every",
                "val_size",
                "ckpt_every",
            ),
        )
        if self.lm_seq_len < 2:
            raise ConfigError(f"train.lm_seq_len={self.lm_seq_len!r}: must be at least 2 (one token predicts the next)")
        # Written with `not` so that NaN, for which every comparison is false, fails too.
        if not 0 < self.max_skipped_share <= 1:
            raise ConfigError(f"train.max_skipped_share={self.max_skipped_share!r}: must be in (0, 1]")


@dataclass(frozen=True)
class LoraConfig:
    variant: Literal["none", "outer", "inner"] = "none"
    """`none`: meta-learn every weight; `outer`: meta-learn a LoRA delta, with the full inner step; `inner`: meta-learn
    a LoRA initialisation, with the inner step on its factors."""
    rank: int = 1
    """r of every factored matrix (the paper uses 1)."""
    alpha: float = 1.0
    """delta = (alpha / rank) · B·A, as in PEFT."""
    meta_learn_b: bool = True
    """variant=inner: meta-learn B as well as A. False keeps B = 0 at θ, so NC and Prompt stay the start model's
    exactly and only the inner step writes B (along the input directions the meta-learnt A picks)."""
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    """Names of the Linear layers to factor."""

    @property
    def scale(self) -> float:
        return self.alpha / self.rank if self.rank else 0.0

    def __post_init__(self) -> None:
        _require(self, "lora", positive=("alpha",), non_negative=("rank",))
        if not self.meta_learn_b and self.variant != "inner":
            raise ConfigError(f"lora.meta_learn_b=false is for lora.variant=inner, got lora.variant={self.variant}")


@dataclass(frozen=True)
class TransferConfig:
    mode: Literal["none", "sequential", "joint"] = "none"
    """Cross-task study (Table 3). `sequential`: meta-train on the task, then fine-tune ordinarily on task_b; `joint`:
    that fine-tuning loss on task_b inside every outer step."""
    task_b: str = "reversal"
    """The second task (registry name or `jsonl:<path>`): its train split is fine-tuned on, its test split measures
    transfer."""
    n_tasks: int = 200
    """Task-B training triples for the ordinary fine-tune, each in Prompt and NC format."""
    lr: float = 3.0e-5
    """sequential: AdamW learning rate of the fine-tune on task B."""
    batch_size: int = 8
    """Sequences per fine-tuning batch (the sequential step, or the joint term of each outer step)."""
    weight: float = 1.0
    """joint: weight of task B's fine-tuning loss in the outer loss."""

    def __post_init__(self) -> None:
        _require(self, "transfer", positive=("lr",), at_least_one=("batch_size",), non_negative=("n_tasks", "weight"))


@dataclass(frozen=True)
class PipelineConfig:
    objectives: tuple[Literal["lc", "lg"], ...] = ("lc",)
    """`promptgd run` meta-trains one model per objective (lc, lg) and compares them."""


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

    def __post_init__(self) -> None:
        """The settings of two sections that cannot run together (each section has checked its own already)."""
        inner, train, lora = self.inner, self.train, self.lora
        if self.transfer.mode == "sequential" and lora.variant != "none":
            raise ConfigError(
                "transfer.mode=sequential fine-tunes the full weights after meta-training; "
                "use it with lora.variant=none"
            )
        if inner.lr_scales != "none" and lora.variant != "none":
            raise ConfigError(f"inner.lr_scales is for lora.variant=none, got lora.variant={lora.variant}")
        cut_for_warmup = sum(mixed.n_warmup for mixed in self.task.mixture)
        if self.task.mixture and (self.warmup.n_tasks == 0) != (cut_for_warmup == 0):
            raise ConfigError(
                f"warmup.n_tasks={self.warmup.n_tasks} with task.mixture entries that cut {cut_for_warmup} warm-up "
                "triples: set both, or neither"
            )
        if train.freeze_weights and inner.lr_scales == "none":
            raise ConfigError(
                "train.freeze_weights=true meta-learns only inner.lr_scales: set inner.lr_scales=tensor or factored"
            )
        if inner.lr_scales != "none" and train.fsdp:
            raise ConfigError("inner.lr_scales: not with train.fsdp=true (the learned scales are not sharded)")
        if train.fsdp and (lora.variant != "none" or inner.implementation != "implicit"):
            # A sharded model cannot be called on other weights (functional_call would hand its layers the shards), so
            # θ' must never be materialised, and LoRA merges its factors into the weights in exactly such a call.
            raise ConfigError(
                f"train.fsdp=true needs lora.variant=none and inner.implementation=implicit, "
                f"got lora.variant={lora.variant}, inner.implementation={inner.implementation}"
            )


# The fields grouped last in their sections: they set how fast a run goes and how much memory it takes, never what it
# computes beyond float rounding. Tests hold them to that: the implicit and explicit updates give the same logits,
# meta-gradients and FT predictions, and FT evaluation passes of any size the same results (tests/test_implicit.py);
# gradient sinks give autograd's gradient over several passes (tests/test_gradient_sinks.py); two processes, sharded
# or not, train and evaluate what one does in other passes and batches (tests/test_distributed.py); a resumed run ends
# where an uninterrupted one does (tests/test_train.py). The device changes only float rounding, and the logging
# settings only where rows go and how many.
SPEED_ONLY = (
    "model.device",
    "inner.implementation",
    "eval.batch_size",
    "eval.pass_tokens",
    "train.pass_tokens",
    "train.gradient_sinks",
    "train.fsdp",
    "train.log",
    "train.log_every",
    "train.ckpt_every",
)


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
        (item_type, _ellipsis) = typing.get_args(annotation)
        if isinstance(value, str):  # `eval.modes=nc,ft` or `eval.stream_probes=10,100` on the command line
            items = [v.strip() for v in value.split(",") if v.strip()]
            value = items if item_type is str or typing.get_origin(item_type) is Literal else map(yaml.safe_load, items)
            value = list(value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
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
    missing = [f.name for f in fields(cls) if f.name not in data and f.default is f.default_factory is MISSING]
    if missing:
        raise ConfigError(f"{prefix.rstrip('.') or '<root>'}: missing key {missing[0]!r}")
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
    """Defaults, then `under` (nested sections, e.g. a meta-trained model's update settings), then the YAML preset at
    `path` (which may name a `base:` preset), then dotted overrides."""
    data: dict = dict(under or {})
    if path is not None:
        data = _merge(data, _read_yaml(Path(path)))
    data = _merge(data, _dotted_to_nested(overrides or []))
    where = f"{path}: " if path is not None else ""
    try:
        return _build(RunConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{where}{e}") from None


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
    return _build(RunConfig, data)


def with_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    return _build(RunConfig, _merge(to_dict(config), _dotted_to_nested(overrides)))


__all__ = ["RunConfig", "ConfigError", "load_config", "dump_yaml", "from_dict", "with_overrides", "replace"]
