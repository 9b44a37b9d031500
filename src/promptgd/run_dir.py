"""One owner for the directories promptgd writes: where each stage of a run lives, when a stage counts as
finished, whether a saved stage matches the config asked for now, and how files are written so that a crash
never leaves a half-written one and a second command never writes into a directory another one holds.

Layout (`promptgd run --out ROOT`; `promptgd train --out ROOT` writes one objective's part at ROOT itself):
  start_model/    the format-warmed-up starting model (the LC teacher and the base row), beside
                  warmup_losses.json and warmup_seconds.json
  base/           the base row's evaluation; base-ood/ the same on held-out description families
  <objective>/    model/, checkpoints/, metrics.jsonl, config.yaml, train_seconds.json, eval/, eval-ood/
  summary.json  report.md  figure2.png
An evaluation directory holds summary.json, predictions.jsonl and config.yaml.

Every model and evaluation directory is written under a temporary name beside its target and renamed into place
with a completion marker inside: a directory counts as finished exactly when the marker is there.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from promptgd import distributed
from promptgd.config import RunConfig, from_dict, to_dict
from promptgd.errors import DiskFullError, UserError, is_out_of_space

COMPLETE = ".promptgd-complete"  # written last into a staged directory
LOCK_SUFFIX = ".promptgd-lock"  # .<dir name><suffix> beside a directory: held (flock) by the command writing it
_STAGING = ".staging-"  # prefix of the temporary directories beside a target


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def start_model(self) -> Path:
        return self.root / "start_model"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    def base(self, ood: bool = False) -> Path:
        return self.root / ("base-ood" if ood else "base")

    def eval(self, ood: bool = False) -> Path:
        return self.root / ("eval-ood" if ood else "eval")

    def objective(self, name: str) -> RunDir:
        return RunDir(self.root / name)

    def refuse_training_over(self) -> None:
        """`promptgd train` without --resume: a directory with a training in it is not started over."""
        if is_complete(self.model) or self.checkpoints.exists() or self.metrics.exists():
            raise RunDirError(f"{self.root}: holds a meta-training run; resume it (--resume) or write elsewhere")

    def rows(self) -> dict[str, Path]:
        """Row name -> evaluation directory of a finished or partial `promptgd run` (the rows its summary lists)."""
        if not self.summary.is_file():
            raise FileNotFoundError(f"{self.summary}: missing; is {self.root} a `promptgd run` directory?")

        def place(row: str) -> Path:
            name, ood = row.removesuffix("-ood"), row.endswith("-ood")
            return self.base(ood) if name == "base" else self.objective(name).eval(ood)

        return {row: place(row) for row in json.loads(self.summary.read_text())["rows"]}


def is_complete(directory: Path) -> bool:
    """Whether `directory` (a model or an evaluation) was written to the end by `staged`."""
    return (directory / COMPLETE).is_file()


@contextlib.contextmanager
def staged(target: Path, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory beside `target`; when the block ends without an error it is marked
    complete and renamed to `target`, else removed. A finished `target` is kept (FileExistsError) unless
    `replace`; a `target` without the marker (an older promptgd's, or not promptgd's) is never touched.
    Under torchrun every rank writes its (identical) copy, rank 0 alone keeps it, and all wait until it is in place."""
    if not distributed.is_main():
        with tempfile.TemporaryDirectory() as discarded:
            yield Path(discarded)
        distributed.barrier()
        return
    try:
        with _staged(target, replace) as tmp:
            yield tmp
    finally:
        distributed.barrier()


@contextlib.contextmanager
def _staged(target: Path, replace: bool) -> Iterator[Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not (replace and is_complete(target)):
        if is_complete(target):
            raise FileExistsError(f"{target}: already finished; delete it or write elsewhere")
        raise FileExistsError(
            f"{target}: exists but was not completed by promptgd (an interrupted save of an older version, or "
            "someone else's files); delete it to rebuild it"
        )
    for orphan in target.parent.glob(f"{_STAGING}{target.name}-*"):  # left by a process killed while writing
        shutil.rmtree(orphan, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{_STAGING}{target.name}-"))
    try:
        yield tmp
        (tmp / COMPLETE).write_text("")
        _fsync_tree(tmp)
        if target.exists():  # replace: the old one goes only once the new one is complete
            old = target.with_name(f"{_STAGING}{target.name}-old")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old)
        else:
            tmp.rename(target)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_out_of_space(e):
            raise DiskFullError(target) from e
        raise


def write_text_atomically(path: Path, text: str) -> None:
    """`path` holds either its old content or `text`, never a part of it (written by rank 0 alone under torchrun)."""
    if not distributed.is_main():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def json_text(value) -> str:
    """Strict JSON (a non-finite float becomes null, which every JSON reader accepts; bare NaN is not JSON)."""
    return json.dumps(_finite(value), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def json_line(value) -> str:
    """One strict-JSON line (JSON Lines: predictions.jsonl, metrics.jsonl)."""
    return json.dumps(_finite(value), ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: Path, value) -> None:
    write_text_atomically(path, json_text(value))


def saved_config(path: Path) -> RunConfig:
    """A config.yaml promptgd wrote, read through from_dict (a section saved before it existed gets its defaults)."""
    return from_dict(yaml.safe_load(path.read_text()))


def config_matches(path: Path, wanted: RunConfig, sections: tuple[str, ...] | None = None, ignore=()) -> bool:
    """Whether the config saved at `path` equals `wanted` in `sections` (all by default), leaving out the dotted
    keys in `ignore` (e.g. "eval.modes": an evaluation that holds more modes still serves)."""
    saved, asked = to_dict(saved_config(path)), to_dict(wanted)
    for key in ignore:
        section, field = key.split(".")
        saved[section].pop(field, None)
        asked[section].pop(field, None)
    return all(saved[s] == asked[s] for s in sections or asked)


def require_config(path: Path, wanted: RunConfig, what: str) -> None:
    """Refuse to reuse or resume a stage whose saved config differs from `wanted`."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{what}: {path} is missing, so the saved run cannot be checked; delete {path.parent} to rebuild it"
        )
    if not config_matches(path, wanted):
        raise RunDirError(
            f"{what}: {path} differs from the config asked for now; delete {path.parent} to rebuild it, "
            "or write to another directory"
        )


class RunDirError(UserError, ValueError):
    """A directory that cannot be used as asked (another run's, or held by another command); names the directory."""


class DirectoryLockedError(RunDirError):
    """Another promptgd command is writing the directory; the message names it and its pid."""


@contextlib.contextmanager
def locked(target: Path) -> Iterator[None]:
    """Hold `target` (a run or evaluation directory, existing or not) for this command: a second command that
    writes it fails at once instead of mixing two runs. The lock file sits beside `target`, so `target` holds only
    what the command writes, and is removed on release; the lock is the kernel's (flock), so it goes with the
    process even after kill -9 (the file then stays, unlocked, and the next command takes it). Under torchrun
    rank 0 holds it for the job."""
    if not distributed.is_main():
        yield
        return
    path = target.with_name(f".{target.name}{LOCK_SUFFIX}")
    # Before any work: a directory that cannot be written fails now, not after the evaluation or training it
    # would have held (on a read-only file system even root gets EROFS here).
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and not os.access(target, os.W_OK):
            raise PermissionError(errno.EACCES, "not writable")
    except OSError as e:
        raise RunDirError(f"{target}: cannot write there ({e.strerror})") from None
    while True:
        try:
            handle = path.open("a+")
        except OSError as e:
            raise RunDirError(f"{target}: cannot write there ({e.strerror})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise DirectoryLockedError(f"{target}: in use by another promptgd command (pid {holder})") from None
        # A holder that released (and removed) the file between our open and our flock leaves us holding an
        # orphan: lock the file that is there now instead.
        if path.exists() and os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
            break
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
