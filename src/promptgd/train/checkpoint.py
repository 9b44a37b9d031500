"""Atomic, pickle-free checkpoints: tensors in safetensors, everything else in JSON.

A checkpoint is a directory written under a temporary name and renamed into place; `latest` is a one-line
file replaced atomically after the rename. A crash at any moment leaves `latest` pointing at a complete
checkpoint (or absent), never at a partial one; a checkpoint damaged later on disk is skipped for the one before.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from promptgd.errors import DiskFullError, is_out_of_space


def save_checkpoint(root: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict, keep: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for orphan in root.glob(".tmp-*"):  # left by a process killed while saving
        shutil.rmtree(orphan, ignore_errors=True)
    final = root / f"step_{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp / "tensors.safetensors")
        (tmp / "state.json").write_text(json.dumps(meta, indent=1))
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_out_of_space(e):
            raise DiskFullError(final) from e
        raise
    pointer = root / ".latest.tmp"
    pointer.write_text(final.name + "\n")
    os.replace(pointer, root / "latest")
    for old in sorted(root.glob("step_*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(root: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The newest checkpoint under `root` that loads whole: the one `latest` names, else (damaged on disk, e.g. a
    truncated file) the next older one, saying on stderr which one it skipped and why."""
    pointer = root / "latest"
    if not pointer.is_file():
        raise FileNotFoundError(f"{root}: no checkpoint to resume from (no 'latest' file)")
    named = root / pointer.read_text().strip()
    candidates = [named] + [d for d in sorted(root.glob("step_*"), reverse=True) if d.name < named.name]
    for directory in candidates:
        try:
            return load_file(directory / "tensors.safetensors"), json.loads((directory / "state.json").read_text())
        except (OSError, ValueError, SafetensorError) as e:  # ValueError: bad JSON; SafetensorError: bad header
            print(
                f"promptgd: skipping checkpoint {directory}: it does not load ({type(e).__name__}: {e})",
                file=sys.stderr,
            )
    raise FileNotFoundError(f"{root}: no checkpoint loads (tried {', '.join(d.name for d in candidates)})")


def _fsync_dir(directory: Path) -> None:
    for path in directory.iterdir():
        with path.open("rb") as f:
            os.fsync(f.fileno())


def optimizer_tensors(optimizer: torch.optim.Optimizer, names: list[str], whole) -> dict[str, torch.Tensor]:
    """Adam's per-parameter state as `adam/<parameter name>/<key>` tensors (`names` in the optimiser's parameter
    order); `whole` makes a sharded tensor whole, so a checkpoint resumes under any world size."""
    tensors = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"adam/{names[index]}/{key}"] = whole(value)
    return tensors


def optimizer_state(tensors: dict[str, torch.Tensor], params: dict[str, torch.Tensor], like) -> dict[int, dict]:
    """The optimiser state dict's `state` from `optimizer_tensors`' form; `like(whole, param)` splits a tensor as its
    parameter is. Adam's `step` counters stay where safetensors put them (CPU), where non-capturable Adam reads them
    without a sync; the optimiser moves the moments to their parameter's device itself."""
    state = {}
    for index, (name, param) in enumerate(params.items()):
        keys = [k for k in tensors if k.startswith(f"adam/{name}/")]
        if keys:
            state[index] = {
                k.rsplit("/", 1)[1]: tensors[k] if k.endswith("/step") else like(tensors[k], param) for k in keys
            }
    return state
