"""The meta-training loop: one readable loop over outer steps, with a Stateful trainer that checkpoints
everything needed to resume bit-for-bit (parameters, Adam state, step, data order, RNG, teacher answers)."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import resource
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from promptgd import distributed
from promptgd.config import ConfigError, RunConfig, dump_yaml, replace
from promptgd.data.encoding import Encoder
from promptgd.data.lm_corpus import LMCorpus
from promptgd.data.supervised import SupervisedStream
from promptgd.data.triples import Triple
from promptgd.errors import UserError
from promptgd.evaluate.recipe import evaluate_model
from promptgd.lm import TokenBatch, functional_forward, lm_loss
from promptgd.models.parameterization import LR_SCALES, Parameterization, full_rank, implicit_update
from promptgd.objectives.answer_loss import answer_logprobs, answer_loss
from promptgd.objectives.lc import lc_task, teacher_answers
from promptgd.objectives.lg import lg_task
from promptgd.objectives.meta_task import MetaTask
from promptgd.run_dir import RunDir, write_text_atomically
from promptgd.train import fsdp
from promptgd.train.checkpoint import load_checkpoint, save_checkpoint
from promptgd.train.metastep import meta_loss
from promptgd.train.metrics_log import MetricsLog
from promptgd.update.gradient_sinks import gradient_sinks
from promptgd.update.implicit import LowRankUpdate


class TrainingDivergedError(UserError, RuntimeError):
    """Too many steps had a non-finite loss or gradient (train.max_skipped_share): settings that diverge."""


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated accelerator memory, or on CPU the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MetaTrainer:
    def __init__(
        self,
        cfg: RunConfig,
        tokenizer,
        param: Parameterization,
        tasks: list[Triple],
        val: list[Triple],
        out: Path,
        task_b: list[Triple] = (),
    ):
        """`val`: the validation split; its first `train.val_size` triples are evaluated every `train.val_every` steps,
        and no paragraph of the LM corpus that holds one of its contexts is trained on. `task_b`: training triples of
        the second task, fine-tuned on inside every outer step when `transfer.mode` is joint."""
        self.cfg, self.tokenizer, self.param, self.tasks, self.val, self.out = cfg, tokenizer, param, tasks, val, out
        self.device = next(param.model.parameters()).device
        self.encoder = Encoder(tokenizer, cfg.format)
        t = cfg.train
        self.group = cfg.inner.contexts  # triples absorbed by one inner update
        per_step = t.batch_size * self.group
        self.order = self._data_order(len(tasks), t.epochs, t.seed)
        self.total_steps = len(self.order) // per_step
        if self.total_steps == 0:
            raise ValueError(f"train: {len(tasks)} tasks × {t.epochs} epochs is less than one step of {per_step}")
        # WikiText's offline training triples and LM text come from the same release file: the validation contexts
        # must not be LM-trained on, or choosing settings on them would reward memorising their continuations.
        # With frozen weights (train.freeze_weights) the terms at θ are constants: not computed.
        self.lm = (
            LMCorpus(tokenizer, t.lm_corpus, t.lm_seq_len, t.seed, held_out=[v.context for v in val])
            if t.lm_weight > 0 and not t.freeze_weights
            else None
        )
        self.prompt_weight = 0.0 if t.freeze_weights else t.prompt_weight
        transfer = cfg.transfer
        self.task_b = (
            SupervisedStream(self.encoder, list(task_b), transfer.batch_size, t.seed)
            if transfer.mode == "joint" and not t.freeze_weights
            else None
        )
        # The teacher is the frozen starting model (LC); it never receives gradients.
        self.teacher = copy.deepcopy(param.model).requires_grad_(False).eval() if t.objective == "lc" else None
        self.teacher_answers: dict[int, list[int]] = {}
        self.update = implicit_update(param, cfg.inner.implementation)  # None: explicit, one task per pass
        # Sharded over the processes (train.fsdp under torchrun): the update above probed the unsharded modules.
        self.sharded = t.fsdp and distributed.active()
        # Where sinks are exact (update/gradient_sinks.py): full-rank weights (LowRankUpdate), no FSDP2 hooks.
        # Frozen weights (train.freeze_weights) must get no gradient, which a sink would write.
        self.sinks = (
            t.gradient_sinks and isinstance(self.update, LowRankUpdate) and not self.sharded and not t.freeze_weights
        )
        # The weights still require grad (the inner step differentiates with respect to them); the outer backward
        # goes only as far as the trainable tensors, so frozen weights cost neither a gradient nor its graph walk.
        self.backward_inputs = list(param.trainable.values()) if t.freeze_weights else None
        # Frozen weights and one inner step: the scales reach θ' only through η, so the first-order meta-gradient is
        # theirs exactly (tests/test_step_sizes.py) and the context pass keeps no graph of its gradient.
        self.first_order = t.first_order or (t.freeze_weights and cfg.inner.steps == 1)
        if self.sharded:
            self._check_shardable()
            # Validation and the saved model read whole weights, gathered into this copy; it holds storage only while
            # they run (the meta device has none), so sharding saves what it should in between.
            self.whole = copy.deepcopy(param.model).requires_grad_(False).to("meta")
            fsdp.shard(param.model)
            self.param = param = full_rank(param.model, sharded=True)
        # Learned step sizes train at their own rate and without decay (decay would pull η back to inner.lr); their
        # names come last in `trainable`, so the optimiser's parameter order is the checkpoint's.
        weights = [p for name, p in param.trainable.items() if not name.startswith(LR_SCALES)]
        scales = [p for name, p in param.trainable.items() if name.startswith(LR_SCALES)]
        groups = [{"params": weights}] if weights else []
        groups += [{"params": scales, "lr": t.lr_scales_lr, "weight_decay": 0.0}] if scales else []
        self.optimizer = torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step = 0
        self.skipped = 0
        # Seconds train()'s loop spent reaching `step`, over every invocation: a checkpoint carries them, so a run
        # cut and resumed reports its whole training time. `uncounted_steps`: the steps before a resume from a
        # checkpoint written before checkpoints carried their time (its seconds leave those steps out).
        self.seconds = 0.0
        self.uncounted_steps = 0

    def _check_shardable(self) -> None:
        """What train.fsdp needs beyond the config (config.py checks the rest): a model the implicit update covers, and
        outer batches that give every rank as many tasks (each FSDP2 forward and backward is a collective)."""
        world = distributed.world()
        if self.update is None:
            raise ConfigError("train.fsdp=true: the implicit inner update does not cover this model (see the warning)")
        if self.cfg.train.batch_size % world:
            raise ConfigError(
                f"train.fsdp=true: train.batch_size={self.cfg.train.batch_size} must be a multiple of the {world} processes"
            )

    @staticmethod
    def _data_order(n: int, epochs: int, seed: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        return [i for _ in range(epochs) for i in torch.randperm(n, generator=generator).tolist()]

    def _lr_factor(self, step: int) -> float:
        t = self.cfg.train
        if step < t.warmup_steps:
            return (step + 1) / t.warmup_steps
        if t.lr_schedule == "constant":
            return 1.0
        progress = (step - t.warmup_steps) / max(1, self.total_steps - t.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    # ---- one outer step -------------------------------------------------------------------------------
    def _meta_tasks(self, indices: list[int]) -> list[MetaTask]:
        """This rank's tasks of the outer batch `indices` (all of them in one process)."""
        groups = distributed.share([indices[i : i + self.group] for i in range(0, len(indices), self.group)])
        if self.teacher is None:
            return [lg_task(self.encoder, [self.tasks[i] for i in g], self.device) for g in groups]
        # Every rank decodes the whole batch's teacher answers, in one batch as a single process does: answers
        # decoded in other batches could differ in a near-tie, and the checkpoint holds them all.
        missing = [i for i in indices if i not in self.teacher_answers]
        if missing:
            teacher_params = dict(self.teacher.named_parameters())
            answers = teacher_answers(
                functional_forward(self.teacher),
                teacher_params,
                self.encoder,
                [self.tasks[i] for i in missing],
                self.cfg.eval.max_new_tokens,
                batch_size=len(missing),
                device=self.device,
            )
            self.teacher_answers.update(zip(missing, answers))
        teacher_forward, teacher_params = functional_forward(self.teacher), dict(self.teacher.named_parameters())
        return [
            lc_task(
                teacher_forward,
                teacher_params,
                self.encoder,
                [self.tasks[i] for i in g],
                [self.teacher_answers[i] for i in g],
                self.device,
            )
            for g in groups
        ]

    def _passes(self, tasks: list[MetaTask]) -> list[MetaTask]:
        """The tasks grouped into passes: one task each for the explicit update; for the implicit one, consecutive
        tasks while their context and query tokens (padded) stay within train.pass_tokens."""
        if self.update is None:
            return tasks
        groups, current = [], []
        for task in tasks:
            candidate = current + [task]
            padded = _padded_tokens([c for t in candidate for c in t.contexts]) + _padded_tokens(
                [t.queries for t in candidate]
            )
            if current and padded > self.cfg.train.pass_tokens:
                groups.append(current)
                candidate = [task]
            current = candidate
        groups.append(current)
        if self.sharded:
            # FSDP2's collectives pair the ranks' passes one to one: every rank runs as many as the rank that needs
            # most, its own tasks (as many as any other rank's) split evenly over them.
            n = distributed.max_int(len(groups))
            groups = [tasks[i * len(tasks) // n : (i + 1) * len(tasks) // n] for i in range(n)]
        return [MetaTask.merge(group) for group in groups]

    def train_step(self) -> dict:
        t = self.cfg.train
        start = time.perf_counter()
        per_step = t.batch_size * self.group
        indices = self.order[self.step * per_step : (self.step + 1) * per_step]
        tasks = self._meta_tasks(indices)
        n_tasks = t.batch_size  # the whole outer batch's, over every rank: each task's loss is 1/n of the mean
        self.optimizer.zero_grad(set_to_none=True)
        outer_total, prompt_total, tokens = 0.0, 0.0, 0
        # Pass by pass: each pass's graph (the explicit update's adapted copy of the weights, or the implicit one's
        # per-task factors) is freed by its backward, so peak memory is that of one pass whatever the batch size.
        for task in self._passes(tasks):
            params = self.param.fast()
            with gradient_sinks(self.param.model) if self.sinks else contextlib.nullcontext():
                step_size = self.param.step_size(self.cfg.inner)
                outer = meta_loss(
                    self.param.forward, params, task, self.cfg.inner, self.first_order, self.update, step_size
                )
                outer = outer / n_tasks
                loss = outer
                if self.prompt_weight:
                    # Prompt mode at θ (no update) on the same target: keeps reading the context from the prompt.
                    prompt = answer_loss(
                        answer_logprobs(self.param.forward, params, task.prompts), task.target, task.contexts_per_task
                    )
                    prompt = prompt / n_tasks
                    loss = loss + self.prompt_weight * prompt
                    prompt_total += prompt.item()
                    tokens += task.prompts.n_tokens
            loss.backward(inputs=self.backward_inputs)
            outer_total += outer.item()
            tokens += sum(c.n_tokens for c in task.contexts) + task.queries.n_tokens
        lm_value = task_b_value = 0.0
        if self.lm is not None:
            lm_value, lm_tokens = self._plain_term(self.lm.batch(self.step, self.device), t.lm_weight)
            tokens += lm_tokens
        if self.task_b is not None:
            task_b_value, b_tokens = self._plain_term(
                self.task_b.batch(self.step, self.device), self.cfg.transfer.weight
            )
            tokens += b_tokens
        if not self.sharded:  # FSDP2 has already summed them, each rank holding its shard
            distributed.sum_gradients(list(self.param.trainable.values()))
        outer_total, prompt_total, lm_value, task_b_value, tokens = distributed.sum_floats(
            [outer_total, prompt_total, lm_value, task_b_value, tokens]
        )
        lm_value = lm_value if self.lm is not None else float("nan")
        task_b_value = task_b_value if self.task_b is not None else float("nan")
        grads = [p.grad for p in self.param.trainable.values() if p.grad is not None]
        grad_norm = float(fsdp.full(torch.nn.utils.get_total_norm(grads))) if grads else 0.0
        extras = [v for v, on in ((lm_value, self.lm is not None), (task_b_value, self.task_b is not None)) if on]
        finite = all(math.isfinite(v) for v in [outer_total, prompt_total, grad_norm, *extras])
        if finite:
            if t.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.param.trainable.values(), t.clip_norm)
            self.optimizer.step()
        else:
            self.skipped += 1  # a non-finite loss or gradient: drop this step's update, keep going
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        self.step += 1
        seconds = time.perf_counter() - start
        return {
            "step": self.step,
            "loss": outer_total
            + self.prompt_weight * prompt_total
            + (t.lm_weight * lm_value if self.lm is not None else 0.0)
            + (self.cfg.transfer.weight * task_b_value if self.task_b is not None else 0.0),
            "outer": outer_total,
            "prompt": prompt_total,
            "lm": lm_value,
            "task_b": task_b_value,
            "grad_norm": grad_norm,
            "lr": lr,
            "skipped": self.skipped,
            "tokens_per_s": tokens / seconds,  # all ranks' tokens
            "world": distributed.world(),  # processes sharing the outer batch (torchrun)
            "sharded": self.sharded,  # weights, gradients and Adam state split over them (train.fsdp)
            "seconds": seconds,
            "peak_mem_mb": peak_memory_mb(self.device),
        }

    def _plain_term(self, batch: TokenBatch, weight: float) -> tuple[float, float]:
        """Backward of `weight` × the mean LM loss over `batch`'s rows, of which this rank takes its share; returns
        (its part of that mean, its tokens), which summed over ranks give the whole batch's."""
        n = batch.input_ids.shape[0]
        if self.sharded:
            # Each rank must join every FSDP2 forward and backward: all compute the whole batch's term, 1/world each.
            mine, share = batch, 1 / distributed.world()
        else:
            rows = distributed.share(list(range(n)))
            if not rows:
                return 0.0, 0
            mine, share = batch.rows(rows), len(rows) / n
        term = lm_loss(self.param.forward, self.param.fast(), mine) * share
        (weight * term).backward()
        return term.item(), mine.n_tokens * share

    # ---- validation -----------------------------------------------------------------------------------
    def validate(self) -> dict[str, dict]:
        """FT and Prompt metrics on the validation triples: whether the update learns, and whether reading the
        context from the prompt survives meta-training (LC and LG train only the FT path)."""
        cfg = replace(self.cfg, eval=replace(self.cfg.eval, modes=("prompt", "ft"), limit=0))
        val = self.val[: self.cfg.train.val_size or None]
        param = full_rank(self.whole_model()) if self.sharded else self.param
        try:
            modes = evaluate_model(param.model, self.tokenizer, val, cfg, progress=False, param=param).modes
        finally:
            self.release_whole_model()
        return {"val_ft": modes["ft"], "val_prompt": modes["prompt"]}

    def whole_model(self) -> torch.nn.Module:
        """The model with its current weights whole: itself, or when sharded a plain copy they are gathered into (a
        collective; `release_whole_model` frees it again)."""
        if not self.sharded:
            return self.param.model
        self.whole.to_empty(device=self.device)
        self.whole.tie_weights()  # to_empty gave each module its own tensor
        self.whole.load_state_dict(fsdp.full_state_dict(self.param.model))
        # Buffers are not sharded, and the non-persistent ones (rotary frequencies) are in no state dict.
        with torch.no_grad():
            for name, buffer in self.param.model.named_buffers():
                self.whole.get_buffer(name).copy_(buffer)
        return self.whole

    def release_whole_model(self) -> None:
        if self.sharded:
            self.whole.to("meta")

    # ---- Stateful ------------------------------------------------------------------------------------
    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict]:
        # Whole tensors, so that a checkpoint resumes under any world size, sharded or not (a collective if sharded).
        tensors = {f"param/{k}": fsdp.full(v) for k, v in self.param.trainable.items()}
        opt = self.optimizer.state_dict()
        names = list(self.param.trainable)
        for index, state in opt["state"].items():
            for key, value in state.items():
                tensors[f"adam/{names[index]}/{key}"] = fsdp.full(value)
        tensors["rng/torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng/cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {
            "step": self.step,
            "skipped": self.skipped,
            "seconds": self.seconds,
            "uncounted_steps": self.uncounted_steps,
            "param_groups": opt["param_groups"],
            "scheduler": self.scheduler.state_dict(),
            "order": self.order,
            "teacher_answers": {str(k): v for k, v in self.teacher_answers.items()},
            "config": dump_yaml(self.cfg),
        }
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        if meta["order"] != self.order:
            raise ValueError("checkpoint data order differs from this run's: was the task or seed changed?")
        names = list(self.param.trainable)
        params = self.param.trainable
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(fsdp.like(tensors[f"param/{name}"], p))
        state = {}
        for index, name in enumerate(names):
            keys = [k for k in tensors if k.startswith(f"adam/{name}/")]
            if keys:
                # Left where safetensors put them (CPU): the optimiser moves moments to their parameter's device
                # and keeps Adam's `step` counter on the CPU, where non-capturable Adam reads it without a sync.
                # Sharded, each moment becomes this rank's shard of it, as its parameter is.
                state[index] = {
                    k.rsplit("/", 1)[1]: tensors[k] if k.endswith("/step") else fsdp.like(tensors[k], params[name])
                    for k in keys
                }
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        self.scheduler.load_state_dict(meta["scheduler"])
        torch.set_rng_state(tensors["rng/torch"])
        if self.device.type == "cuda" and "rng/cuda" in tensors:  # absent when a CPU run's checkpoint resumes on a GPU
            torch.cuda.set_rng_state(tensors["rng/cuda"], self.device)
        self.step, self.skipped = meta["step"], meta["skipped"]
        if "seconds" in meta:
            self.seconds, self.uncounted_steps = meta["seconds"], meta["uncounted_steps"]
        else:  # written by code before checkpoints carried their time (2026-12-05)
            self.seconds, self.uncounted_steps = 0.0, meta["step"]
        self.teacher_answers = {int(k): v for k, v in meta["teacher_answers"].items()}

    def save(self) -> None:
        # Every rank holds the same state after the all-reduce; sharded, every rank joins in gathering it.
        if distributed.is_main() or self.sharded:
            tensors, meta = self.state_dict()
            if distributed.is_main():
                save_checkpoint(self.out / "checkpoints", self.step, tensors, meta)

    def resume(self) -> None:
        self.load_state_dict(*load_checkpoint(self.out / "checkpoints"))

    # ---- the loop ------------------------------------------------------------------------------------
    def train(self, progress: bool = True, stop_after: int | None = None) -> None:
        """Run to the end (or for `stop_after` more steps, which tests use to simulate an interruption)."""
        t = self.cfg.train
        run = RunDir(self.out)
        write_text_atomically(run.config, dump_yaml(self.cfg))
        metrics = run.metrics
        if metrics.is_file():
            # Rows an interrupted run logged after the step we start from (all of them when we start from scratch,
            # e.g. after a crash before the first checkpoint) would otherwise appear twice.
            rows = [line for line in _logged_rows(metrics) if json.loads(line)["step"] <= self.step]
            write_text_atomically(metrics, "".join(r + "\n" for r in rows))
        last = self.total_steps if stop_after is None else min(self.total_steps, self.step + stop_after)
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc=f"meta-train {t.objective}",
            unit="step",
            disable=not progress or not distributed.is_main(),
            dynamic_ncols=True,
        )
        log = MetricsLog(self.cfg, self.out, self.step)
        started, seconds_before = time.perf_counter(), self.seconds
        try:
            while self.step < last:
                row = self.train_step()
                if t.val_every and (self.step % t.val_every == 0 or self.step == self.total_steps) and self.val:
                    row.update(self.validate())
                self.seconds = seconds_before + time.perf_counter() - started
                if self.step % t.log_every == 0 or "val_ft" in row or self.step == self.total_steps:
                    log.write(row)
                if (t.ckpt_every and self.step % t.ckpt_every == 0) or self.step == last:
                    self.save()
                bar.set_postfix(loss=f"{row['outer']:.3f}", lm=f"{row['lm']:.2f}", gn=f"{row['grad_norm']:.2f}")
                bar.update(1)
        finally:
            log.close()
            bar.close()  # ends the bar's line, so an error message after it starts a line of its own
        if self.step == self.total_steps and self.skipped >= t.max_skipped_share * self.total_steps:
            raise TrainingDivergedError(
                f"train: {self.skipped} of {self.total_steps} steps were skipped for a non-finite loss or gradient "
                f"(train.max_skipped_share={t.max_skipped_share}), so no model is saved; {self.out / 'metrics.jsonl'} "
                "shows where; a smaller inner.lr or train.lr usually helps"
            )


def _padded_tokens(batches: list[TokenBatch]) -> int:
    """Token slots of `batches` padded into one batch: what a pass costs in memory and time."""
    return sum(len(b.input_ids) for b in batches) * max(b.input_ids.shape[1] for b in batches)


def _logged_rows(metrics: Path) -> list[str]:
    """The complete lines of metrics.jsonl: a last line cut short by a kill is dropped (its step is redone);
    a broken line anywhere else is damage and raises, naming the file and line."""
    lines = metrics.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        try:
            json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                return lines[:-1]
            raise ValueError(f"{metrics}:{number}: not a JSON line; the training log is damaged") from None
    return lines
