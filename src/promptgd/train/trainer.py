"""The meta-training loop: one readable loop over outer steps, with a Stateful trainer that checkpoints
everything needed to resume bit-for-bit (parameters, Adam state, step, data order, RNG, teacher answers)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from tqdm.auto import tqdm

from promptgd import distributed
from promptgd.config import RunConfig, dump_yaml, replace
from promptgd.data.encoding import Encoder
from promptgd.errors import UserError
from promptgd.evaluate.recipe import evaluate_model
from promptgd.models.parameterization import Parameterization, full_rank
from promptgd.objectives.lc import LCObjective
from promptgd.objectives.lg import LGObjective
from promptgd.objectives.meta_task import MetaTask, into_passes
from promptgd.run_dir import RunDir, write_text_atomically
from promptgd.train import fsdp
from promptgd.train.checkpoint import load_checkpoint, optimizer_state, optimizer_tensors, save_checkpoint
from promptgd.train.loss_terms import batch_terms, pass_terms
from promptgd.train.metrics_log import MetricsLog, peak_memory_mb
from promptgd.train.outer_optimizer import data_order, outer_optimizer
from promptgd.update.gradient_sinks import gradient_sinks
from promptgd.update.implicit import LowRankUpdate


class TrainingDivergedError(UserError, RuntimeError):
    """Too many steps had a non-finite loss or gradient (train.max_skipped_share): settings that diverge."""


class MetaTrainer:
    def __init__(self, cfg: RunConfig, tokenizer, param: Parameterization, tasks, val, out: Path, task_b=()):
        """`tasks`: the meta-training triples; `val`: the validation split, whose first `train.val_size` triples are
        evaluated every `train.val_every` steps; `task_b`: the second task's training triples (joint transfer)."""
        self.cfg, self.tokenizer, self.tasks, self.val, self.out = cfg, tokenizer, tasks, val, out
        self.device = next(param.model.parameters()).device
        t, encoder = cfg.train, Encoder(tokenizer, cfg.format)
        self.order = data_order(len(tasks), t.epochs, t.seed)
        self.per_step = t.batch_size * cfg.inner.contexts  # triples of one outer step
        self.total_steps = len(self.order) // self.per_step
        if self.total_steps == 0:
            raise ValueError(f"train: {len(tasks)} tasks × {t.epochs} epochs is less than one step of {self.per_step}")
        self.objective = (
            LCObjective(param.model, encoder, cfg.eval.max_new_tokens, self.device)
            if t.objective == "lc"
            else LGObjective(encoder, self.device)
        )
        self.update = param.inner_update(cfg.inner.implementation, probe=not t.fsdp)
        self.sharded = t.fsdp and distributed.active()  # weights, gradients and Adam state split over the processes
        if self.sharded:
            fsdp.check_shardable(isinstance(self.update, LowRankUpdate), t.batch_size)
            self.whole = fsdp.WholeModel(param.model)  # made before sharding: the update probed the plain modules
            fsdp.shard(param.model)
            param = full_rank(param.model, sharded=True)
        self.param = param
        # Each use of a weight adds its meta-gradient to .grad at once (update/gradient_sinks.py), where that is
        # exact: full-rank weights under the implicit update, unsharded, and not frozen (a sink would write them).
        exact = isinstance(self.update, LowRankUpdate) and not self.sharded and not t.freeze_weights
        self.sinks = t.gradient_sinks and exact
        # Frozen weights and one inner step: the scales reach θ' only through η, so the first-order meta-gradient is
        # theirs exactly (tests/test_step_sizes.py) and the context pass keeps no graph of its gradient.
        first_order = t.first_order or (t.freeze_weights and cfg.inner.steps == 1)
        self.pass_terms = pass_terms(cfg, param, self.update, first_order)
        self.batch_terms = batch_terms(cfg, tokenizer, encoder, val, task_b)
        self.optimizer, self.scheduler = outer_optimizer(param, t, self.total_steps)
        self.step = self.skipped = 0
        self.seconds = 0.0  # the loop's time to reach `step` over every invocation (a checkpoint carries it)

    # ---- one outer step -------------------------------------------------------------------------------
    def _passes(self, indices: list[int]) -> list[MetaTask]:
        """This rank's tasks of the outer batch `indices`, grouped into passes (each pass's graph is freed by its
        own backward, so peak memory is one pass's whatever the batch size)."""
        k = self.cfg.inner.contexts
        groups = distributed.share([indices[i : i + k] for i in range(0, len(indices), k)])
        tasks = self.objective.tasks(self.tasks, indices, groups)
        passes = into_passes(tasks, self.update.tasks_per_pass, self.cfg.train.pass_tokens)
        if self.sharded:  # FSDP2 pairs the ranks' passes one to one: every rank runs as many as the one that needs most
            n = distributed.max_int(len(passes))
            passes = [tasks[i * len(tasks) // n : (i + 1) * len(tasks) // n] for i in range(n)]
        return [group[0] if len(group) == 1 else MetaTask.merge(group) for group in passes]

    def train_step(self) -> dict:
        start, t = time.perf_counter(), self.cfg.train
        self.optimizer.zero_grad(set_to_none=True)
        values, tokens = dict.fromkeys([term.name for term in self.pass_terms], 0.0), 0
        for task in self._passes(self.order[self.step * self.per_step : (self.step + 1) * self.per_step]):
            params = self.param.fast()
            with gradient_sinks(self.param.model) if self.sinks else contextlib.nullcontext():
                # Each task's loss is 1/n of the whole outer batch's mean, over every rank.
                losses = [term.loss(params, task) / t.batch_size for term in self.pass_terms]
            weighted = [term.weight * loss for term, loss in zip(self.pass_terms, losses)]
            sum(weighted[1:], weighted[0]).backward(inputs=None if not t.freeze_weights else self._trainable())
            for term, loss in zip(self.pass_terms, losses):
                values[term.name] += loss.item()
                tokens += term.tokens(task)
        for term in self.batch_terms:
            values[term.name], batch_tokens = term.backward(
                self.param.forward, self.param.fast, self.step, self.sharded
            )
            tokens += batch_tokens
        if not self.sharded:  # FSDP2 has already summed them, each rank holding its shard
            distributed.sum_gradients(self._trainable())
        *sums, tokens = distributed.sum_floats([*values.values(), tokens])
        values = {"outer": 0.0, "prompt": 0.0, "lm": math.nan, "task_b": math.nan} | dict(zip(values, sums))
        grads = [p.grad for p in self._trainable() if p.grad is not None]
        grad_norm = float(fsdp.full(torch.nn.utils.get_total_norm(grads))) if grads else 0.0
        if all(math.isfinite(v) for v in [*sums, grad_norm]):
            if t.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(self._trainable(), t.clip_norm)
            self.optimizer.step()
        else:
            self.skipped += 1  # a non-finite loss or gradient: drop this step's update, keep going
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        self.step += 1
        return self._row(values, grad_norm, lr, tokens, time.perf_counter() - start)

    def _trainable(self) -> list[torch.Tensor]:
        # With frozen weights the outer backward goes only as far as the trainable tensors (the scales), so the
        # weights, which still require grad for the inner step, cost neither a gradient nor its graph walk.
        return list(self.param.trainable.values())

    def _row(self, values: dict, grad_norm: float, lr: float, tokens: float, seconds: float) -> dict:
        weights = {term.name: term.weight for term in [*self.pass_terms, *self.batch_terms]}
        return {
            "step": self.step,
            "loss": sum(weights[name] * values[name] for name in weights),
            **values,
            "grad_norm": grad_norm,
            "lr": lr,
            "skipped": self.skipped,
            "tokens_per_s": tokens / seconds,  # all ranks' tokens
            "world": distributed.world(),  # processes sharing the outer batch (torchrun)
            "sharded": self.sharded,
            "seconds": seconds,
            "peak_mem_mb": peak_memory_mb(self.device),
        }

    # ---- validation -----------------------------------------------------------------------------------
    def validate(self) -> dict[str, dict]:
        """FT and Prompt metrics on the validation triples: whether the update learns, and whether reading the
        context from the prompt survives meta-training (LC and LG train only the FT path)."""
        cfg = replace(self.cfg, eval=replace(self.cfg.eval, modes=("prompt", "ft"), limit=0))
        val = self.val[: self.cfg.train.val_size or None]
        with self.whole_model() as model:
            param = full_rank(model) if self.sharded else self.param
            modes = evaluate_model(model, self.tokenizer, val, cfg, progress=False, param=param).modes
        return {"val_ft": modes["ft"], "val_prompt": modes["prompt"]}

    @contextlib.contextmanager
    def whole_model(self) -> Iterator[torch.nn.Module]:
        """The model with its current weights whole: itself, or when sharded a copy they are gathered into."""
        if not self.sharded:
            yield self.param.model
            return
        with self.whole.gathered(self.param.model, self.device) as model:
            yield model

    # ---- Stateful ------------------------------------------------------------------------------------
    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict]:
        # Whole tensors, so that a checkpoint resumes under any world size, sharded or not (a collective if sharded).
        tensors = {f"param/{k}": fsdp.full(v) for k, v in self.param.trainable.items()}
        tensors |= optimizer_tensors(self.optimizer, list(self.param.trainable), fsdp.full)
        tensors["rng/torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng/cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {"step": self.step, "skipped": self.skipped, "seconds": self.seconds}
        meta |= {"param_groups": self.optimizer.state_dict()["param_groups"]}
        meta |= {"scheduler": self.scheduler.state_dict(), "order": self.order, "config": dump_yaml(self.cfg)}
        return tensors, meta | self.objective.state_dict()

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        if meta["order"] != self.order:
            raise ValueError("checkpoint data order differs from this run's: was the task or seed changed?")
        params = self.param.trainable
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(fsdp.like(tensors[f"param/{name}"], p))
        state = optimizer_state(tensors, params, fsdp.like)
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        self.scheduler.load_state_dict(meta["scheduler"])
        torch.set_rng_state(tensors["rng/torch"])
        if self.device.type == "cuda" and "rng/cuda" in tensors:  # absent when a CPU run's checkpoint resumes on a GPU
            torch.cuda.set_rng_state(tensors["rng/cuda"], self.device)
        self.step, self.skipped = meta["step"], meta["skipped"]
        self.seconds = meta["seconds"]
        self.objective.load_state_dict(meta)

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
        write_text_atomically(RunDir(self.out).config, dump_yaml(self.cfg))
        last = self.total_steps if stop_after is None else min(self.total_steps, self.step + stop_after)
        show = progress and distributed.is_main()
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f"meta-train {t.objective}", disable=not show)
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
