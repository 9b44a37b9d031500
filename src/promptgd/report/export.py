"""Row data for the repository: each evaluated model of a result as `<dest>/<row>/summary.json`, `config.yaml` and
`predictions.jsonl.gz`, so every number in a committed result file can be checked against its predictions.

    promptgd run configs/quickstart.yaml --out runs/quickstart
    promptgd export runs/quickstart --out results/studies/quickstart     # results/studies/quickstart/{base,lc}/...
    promptgd export runs/squad_test/ft_steps16 --out results/studies/squad_smollm2/base-steps16   # one `promptgd eval`
    promptgd export runs/sweep/mu1 --out results/studies/sweep_quickstart/mu1   # one `promptgd train`: config and logs

`promptgd reproduce` writes its rows the same way, beside its markdown, with each model's training log.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from promptgd.run_dir import RunDir

# Committed files stay small enough for a repository; a larger evaluation belongs in a run directory, not in git.
MAX_PREDICTIONS_BYTES = 2 * 2**20
# What a training leaves beside its model that a result's numbers rest on: loss terms and validation curves, and the
# training's wall time.
TRAINING_LOGS = ("metrics.jsonl", "train_seconds.json")


def export_evaluation(eval_dir: Path, dest: Path) -> None:
    """Copy one evaluation (`promptgd eval`'s files) to `dest`, predictions gzipped byte-reproducibly."""
    for name in ("summary.json", "predictions.jsonl", "config.yaml"):
        if not (eval_dir / name).is_file():
            raise FileNotFoundError(f"{eval_dir / name}: missing; is {eval_dir} a finished evaluation?")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(eval_dir / "summary.json", dest / "summary.json")
    shutil.copyfile(eval_dir / "config.yaml", dest / "config.yaml")
    packed = gzip.compress((eval_dir / "predictions.jsonl").read_bytes(), compresslevel=9, mtime=0)
    if len(packed) > MAX_PREDICTIONS_BYTES:
        raise ValueError(
            f"{eval_dir / 'predictions.jsonl'}: {len(packed) / 2**20:.1f} MiB gzipped, over the "
            f"{MAX_PREDICTIONS_BYTES / 2**20:.0f} MiB a committed row may hold; evaluate fewer triples"
        )
    (dest / "predictions.jsonl.gz").write_bytes(packed)


def export_rows(
    rows: dict[str, Path],
    dest: Path,
    extra_files: dict[str, Path] | None = None,
    replace: bool = False,
    row_files: dict[str, tuple[Path, ...]] | None = None,
) -> None:
    """Write `dest/<row>/` for every (row -> evaluation directory), with `row_files[row]` beside it, and copy each
    of `extra_files` (path under `dest` -> source) to its place."""

    def fill(staging: Path) -> None:
        for row, eval_dir in rows.items():
            export_evaluation(eval_dir, staging / row)
            for path in (row_files or {}).get(row, ()):
                shutil.copyfile(path, staging / row / path.name)
        for relative, path in (extra_files or {}).items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, staging / relative)

    _write_whole(dest, replace, fill)


def _training_logs(train_dir: Path) -> tuple[Path, ...]:
    return tuple(path for name in TRAINING_LOGS if (path := train_dir / name).is_file())


def _copy_into(files: list[Path], staging: Path) -> None:
    staging.mkdir(parents=True)
    for path in files:
        shutil.copyfile(path, staging / path.name)


def _write_whole(dest: Path, replace: bool, fill) -> None:
    """`fill(staging)` writes beside `dest`, then the result is renamed into place, so `dest` is never
    half-written; an existing `dest` is kept unless `replace`."""
    if dest.exists() and any(dest.iterdir()) and not replace:
        raise FileExistsError(f"{dest}: already holds exported rows; pass --replace to write over them")
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)  # left by an export that was interrupted
    fill(staging)
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)


def export_run(run_dir: Path, dest: Path, replace: bool = False) -> list[str]:
    """Export every row of a `promptgd run` directory, with its report, figure and summary, and beside each
    meta-trained row the training's logs (TRAINING_LOGS); returns the row names.
    A `promptgd eval` directory is one row, written to `dest` itself; so is a `promptgd train` directory (its
    config.yaml and training logs, without the model)."""
    if (run_dir / "predictions.jsonl").is_file():
        _write_whole(dest, replace, lambda staging: export_evaluation(run_dir, staging))
        return [dest.name]
    if (run_dir / "metrics.jsonl").is_file():
        files = [run_dir / "config.yaml", *_training_logs(run_dir)]
        _write_whole(dest, replace, lambda staging: _copy_into(files, staging))
        return [dest.name]
    rows = RunDir(run_dir).rows()
    trained = {row: _training_logs(run_dir / row) for row in rows}
    extra = {name: run_dir / name for name in ("report.md", "figure2.png", "summary.json")}
    export_rows(rows, dest, extra, replace, trained)
    return list(rows)
