"""Where the trainer's rows go: `metrics.jsonl` always (the record every result is checked against), and the same
rows to TensorBoard and Weights & Biases when `train.log` asks for them."""

from __future__ import annotations

import importlib
import json
import os
import resource
import uuid
from pathlib import Path

import torch

from promptgd import distributed
from promptgd.config import ConfigError, RunConfig, to_dict
from promptgd.run_dir import RunDir, json_line, write_text_atomically


class MetricsLog:
    def __init__(self, cfg: RunConfig, out: Path, start_step: int):
        """`start_step`: the step training starts (or resumes) from; rows an interrupted run logged after it are
        dropped by the trainer from metrics.jsonl and by TensorBoard (purge_step), and W&B resumes its own run."""
        self.jsonl = self.tensorboard = self.wandb = None
        if not distributed.is_main():  # rank 0 logs the rows, which every rank holds after the all-reduce
            return
        metrics = RunDir(out).metrics
        if metrics.is_file():
            # Rows an interrupted run logged after the step we start from (all of them when we start from scratch,
            # e.g. after a crash before the first checkpoint) would otherwise appear twice.
            rows = [line for line in _logged_rows(metrics) if json.loads(line)["step"] <= start_step]
            write_text_atomically(metrics, "".join(r + "\n" for r in rows))
        self.jsonl = metrics.open("a")
        if "tensorboard" in cfg.train.log:
            tensorboard = _optional("torch.utils.tensorboard", "tensorboard")
            self.tensorboard = tensorboard.SummaryWriter(str(out / "tensorboard"), purge_step=start_step + 1)
        if "wandb" in cfg.train.log:
            wandb = _optional("wandb", "wandb")
            # One W&B run per run directory, so a resumed training continues its curves instead of starting a new one.
            id_file = out / "wandb_id"
            run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
            id_file.write_text(run_id + "\n")
            (out / "wandb").mkdir(exist_ok=True)
            self.wandb = wandb.init(
                project=os.environ.get("WANDB_PROJECT", "promptgd"),
                dir=str(out),
                id=run_id,
                resume="allow",
                config=to_dict(cfg),
                mode=os.environ.get("WANDB_MODE", "offline"),  # no account or network needed unless asked for
            )

    def write(self, row: dict) -> None:
        if self.jsonl is None:
            return
        self.jsonl.write(json_line(row))
        self.jsonl.flush()
        scalars = {k: v for k, v in row.items() if k != "step" and isinstance(v, int | float)}
        if self.tensorboard is not None:
            for key, value in scalars.items():
                self.tensorboard.add_scalar(key, value, row["step"])
            self.tensorboard.flush()
        if self.wandb is not None:
            self.wandb.log(scalars, step=row["step"])

    def close(self) -> None:
        if self.jsonl is None:
            return
        self.jsonl.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            self.wandb.finish()


def _optional(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"train.log={package} needs the {package} package: pip install 'promptgd[logging]'") from None


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


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated accelerator memory, or on CPU the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
