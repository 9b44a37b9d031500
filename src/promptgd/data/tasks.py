"""The tasks by name: a plain mapping from a task's name to its builder(n_train, n_test, seed) -> Splits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from promptgd.config import ConfigError
from promptgd.data import notes, people, squad, wikitext
from promptgd.data.triples import Splits, read_jsonl

TASKS: dict[str, Callable[[int, int, int], Splits]] = {
    "character_descriptions": people.character_descriptions,
    "reversal": people.reversal,
    squad.TASK: squad.build_squad,
    wikitext.TASK: wikitext.build_wikitext,
    notes.TASK: notes.build_notes,
}


def task_names() -> list[str]:
    return sorted(TASKS) + ["jsonl:<path>", "mixture (of the above: task.mixture)"]


def load_task(name: str, n_train: int, n_test: int, seed: int) -> Splits:
    """Build a task's splits by name, or read `jsonl:<path>` (test = the file, train = <path>.train.jsonl if present)."""
    if name.startswith("jsonl:"):
        path = Path(name.removeprefix("jsonl:"))
        test = read_jsonl(path)[: n_test or None]
        train_path = path.with_name(path.stem + ".train.jsonl")
        train = read_jsonl(train_path)[: n_train or None] if train_path.is_file() else []
        return Splits(train=train, test=test)
    if name == "mixture":  # data/partition.py builds it from its tasks, each loaded here
        raise ConfigError(f"{name!r}: a mixture is a run's task.name with task.mixture, not a single task")
    if name not in TASKS:
        raise ConfigError(f"task.name={name!r}: unknown task; known: {', '.join(task_names())}")
    return TASKS[name](n_train, n_test, seed)
