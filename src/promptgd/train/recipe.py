"""`promptgd train` and `promptgd run`: thin recipes over the components. Where they write is run_dir.py's."""

from __future__ import annotations

import time
from pathlib import Path

from promptgd import distributed
from promptgd.config import RunConfig
from promptgd.data.encoding import Encoder, check_fits, max_positions
from promptgd.data.partition import Partition, load_partition
from promptgd.malloc import allocator
from promptgd.models.loading import load_configured
from promptgd.models.lora import ADAPTER_DIR, init_factors, lora_inner, lora_outer, merge_into_model, save_adapter
from promptgd.models.parameterization import full_rank, with_lr_scales
from promptgd.models.update_settings import write_update_settings
from promptgd.run_dir import RunDir, is_complete, require_config, staged, write_json
from promptgd.train.trainer import MetaTrainer
from promptgd.train.transfer import finetune_on_task_b, task_b_triples
from promptgd.train.warmup import format_warmup
from promptgd.update.step_sizes import save_log_scales


def trained_or_resumed(
    cfg: RunConfig, out: Path, partition_fn, start_fn, progress: bool = True, stop_after: int | None = None
) -> Path | None:
    """`out/model` if that run is complete (same config), else meta-train it, resuming from its last checkpoint
    if one exists; `partition_fn()` and `start_fn()` give the task's partition and the starting (model, tokenizer)
    and are called only when training (building SQuAD's splits or loading a model is wasted on a finished run);
    `start_fn()` may return None: `out/start_model`, or the format warm-up into it."""
    run = RunDir(out)
    if is_complete(run.model):
        require_config(run.config, cfg, "meta-training")
        return run.model
    resume = resume_point(out) is not None
    return run_train(
        cfg, out, resume=resume, progress=progress, part=partition_fn(), start=start_fn(), stop_after=stop_after
    )


def resume_point(out: Path) -> str | None:
    """The checkpoint an unfinished run in `out` continues from (its name, e.g. 'step_00000125'), or None when the run
    is finished or has no checkpoint yet: the one place that decides whether `trained_or_resumed` resumes."""
    run = RunDir(out)
    latest = run.checkpoints / "latest"
    if is_complete(run.model) or not latest.is_file():
        return None
    return latest.read_text().strip()


def starting_model(cfg: RunConfig, part: Partition, out: Path, progress: bool = True):
    """The model every comparison starts from: the loaded model after the format warm-up on `part.warmup`
    (triples meta-training never sees), saved once in `out/start_model` so reruns, resumes and the LC teacher
    all use the very same weights."""
    saved = RunDir(out).start_model
    # Under torchrun rank 0 alone warms up and the others wait at the barrier its save ends with, so all must agree
    # whether it is needed: a rank reaching this line after rank 0 saved would otherwise load and never join.
    if distributed.main_decides(is_complete(saved)):
        return load_configured(cfg.model, str(saved))
    if cfg.warmup.n_tasks and not distributed.is_main():
        distributed.barrier()
        return load_configured(cfg.model, str(saved))
    started = time.perf_counter()
    model, tokenizer = load_configured(cfg.model)
    if cfg.warmup.n_tasks:
        losses = format_warmup(model, tokenizer, part.warmup, cfg.warmup, cfg.format, cfg.train.seed, progress)
        write_json(out / "warmup_losses.json", losses)
        write_json(out / "warmup_seconds.json", {"seconds": time.perf_counter() - started})
        with staged(saved) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
    return model, tokenizer


def save_meta_trained(model, tokenizer, factors, cfg: RunConfig, out: Path, lr_scales=None) -> None:
    """out/model is always loadable by `promptgd eval --model out/model`:
    - full rank: the model itself, a plain HF checkpoint; with learned step sizes (`lr_scales`, inner.lr_scales)
      their log-scales beside it (update/step_sizes.py), which evaluation reads;
    - lora outer: the delta merged into the weights (plain HF checkpoint), the adapter also in out/adapter;
    - lora inner: the unchanged base weights plus the meta-learned factors in out/model/adapter (PEFT format);
      evaluation then updates only the factors, as in training."""
    if cfg.lora.variant == "outer":
        with staged(out / "adapter", replace=True) as tmp:
            save_adapter(model, factors, cfg.lora, tmp, cfg.model.spec)
        merge_into_model(model, factors, cfg.lora)
    with staged(RunDir(out).model) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_update_settings(cfg, tmp)
        if cfg.lora.variant == "inner":
            save_adapter(model, factors, cfg.lora, tmp / ADAPTER_DIR, cfg.model.spec)
        if lr_scales:
            save_log_scales(lr_scales, tmp)


def run_train(
    cfg: RunConfig,
    out: Path,
    resume: bool = False,
    progress: bool = True,
    part: Partition | None = None,
    start: tuple | None = None,
    stop_after: int | None = None,
) -> Path | None:
    """Meta-train and save the result to `out/model`; returns that path. With `transfer.mode` sequential the
    saved model is the meta-trained one after the ordinary fine-tune on task B. `stop_after`: stop after that many
    more steps with a checkpoint and no model (None returned) unless training ends first; a resume continues."""
    if resume or RunDir(out).config.is_file():  # a checkpoint or log of another config would mix two runs
        require_config(RunDir(out).config, cfg, "resume" if resume else "meta-training")
    part = part or load_partition(cfg)
    if not part.meta:
        raise ValueError(
            f"task.n_train={cfg.task.n_train} leaves no meta-training triples after warmup.n_tasks={cfg.warmup.n_tasks} "
            f"and task.n_val={cfg.task.n_val}"
        )
    model, tokenizer = start or starting_model(cfg, part, out, progress)
    if (positions := max_positions(model)) is not None:
        encoder = Encoder(tokenizer, cfg.format)
        for split in ("meta", "val"):
            check_fits(encoder, part.split(split), positions, cfg.eval.max_new_tokens, f"{cfg.task.name} {split} split")
    tasks, val = part.meta, part.val
    variant = cfg.lora.variant
    factors = init_factors(model, cfg.lora, cfg.train.seed) if variant != "none" else {}
    param = {
        "none": lambda: full_rank(model),
        "outer": lambda: lora_outer(model, factors, cfg.lora),
        "inner": lambda: lora_inner(model, factors, cfg.lora),
    }[variant]()
    if cfg.inner.lr_scales != "none":
        param = with_lr_scales(param, cfg.inner.lr_scales, cfg.train.freeze_weights)
    task_b = task_b_triples(cfg) if cfg.transfer.mode == "joint" else []
    trainer = MetaTrainer(cfg, tokenizer, param, tasks, val, out, task_b)
    if resume:
        trainer.resume()
    trainer.train(progress=progress, stop_after=stop_after)
    if trainer.step < trainer.total_steps:
        return None
    started = time.perf_counter()
    with trainer.whole_model() as model:  # sharded (train.fsdp): gathered on every rank, saved by rank 0
        if cfg.transfer.mode == "sequential":
            write_json(out / "task_b_losses.json", finetune_on_task_b(model, tokenizer, cfg, progress))
        save_meta_trained(model, tokenizer, factors, cfg, out, trainer.param.lr_scales)
    # The loop's seconds over every invocation (a resumed run's whole training), then the fine-tune and saving.
    seconds = trainer.seconds + time.perf_counter() - started
    timing = {"seconds": seconds, "steps": trainer.step, "allocator": allocator()}
    write_json(out / "train_seconds.json", timing)
    return RunDir(out).model
