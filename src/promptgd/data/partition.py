"""How a task's triples are used: format warm-up, meta-training, validation and test never share a context.

    train split (task.n_train triples, as the task builds it)
      ├─ warmup  the first contexts, until warmup.n_tasks triples: the ordinary fine-tune in Prompt and NC format
      ├─ meta    the contexts in between: meta-training tasks (the first train.n_tasks of them)
      └─ val     the last contexts, until task.n_val triples: every choice of hyper-parameters, in-training checks
    test split: reported numbers only; ood: a second test set worded unlike training (held-out description families).

The cuts fall between contexts, not between triples: SQuAD has about five questions per paragraph, and a
validation question whose paragraph was fine-tuned on or meta-trained on would measure memory, not the update.
Triples that share a source passage without sharing a context (WikiText cuts several from one paragraph, each
context a longer prefix of it) are kept together the same way (`Triple.group`).
`val` depends only on the train split and `task.n_val`, so changing the warm-up or the meta-training budget
never changes the triples hyper-parameters were chosen on.

A mixture of tasks (task.name=mixture) partitions each task alone, with its own sizes, exactly as a run of that task
alone would, then interleaves every split across the tasks (`interleave`): a task's validation and test triples are
the ones its own runs use, and never reach training.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from promptgd.config import ConfigError
from promptgd.data.tasks import load_task
from promptgd.data.triples import Splits, Triple

SplitName = Literal["warmup", "meta", "val", "test", "ood"]
SPLITS: tuple[SplitName, ...] = ("warmup", "meta", "val", "test", "ood")


@dataclass(frozen=True)
class Partition:
    warmup: list[Triple]
    meta: list[Triple]
    val: list[Triple]
    test: list[Triple]
    ood: list[Triple]

    def split(self, name: SplitName) -> list[Triple]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose from {', '.join(SPLITS)}")
        return getattr(self, name)


def _take_contexts(groups: list[list[int]], at_least: int) -> list[list[int]]:
    """Whole context groups from the front of `groups` until they hold at least `at_least` triples."""
    taken, count = [], 0
    for group in groups:
        if count >= at_least:
            break
        taken.append(group)
        count += len(group)
    return taken


def partition(splits: Splits, n_warmup: int, n_val: int, n_meta: int = 0) -> Partition:
    """Cut `splits.train` into warm-up, meta-training and validation triples (see the module docstring);
    `n_meta` = 0 keeps every triple left between the two."""
    train = splits.train
    groups: dict[str, list[int]] = {}
    for i, triple in enumerate(train):
        groups.setdefault(triple.group, []).append(i)
    ordered = list(groups.values())
    val_groups = _take_contexts(ordered[::-1], n_val)
    rest = ordered[: len(ordered) - len(val_groups)]
    warmup_groups = _take_contexts(rest, n_warmup)
    meta_groups = rest[len(warmup_groups) :]

    def triples(chosen: list[list[int]]) -> list[Triple]:
        return [train[i] for i in sorted(i for group in chosen for i in group)]

    meta = triples(meta_groups)[: n_meta or None]
    return Partition(
        warmup=triples(warmup_groups), meta=meta, val=triples(val_groups), test=splits.test, ood=splits.ood
    )


def interleave(lists: list[list[Triple]]) -> list[Triple]:
    """The lists merged in proportion to their lengths, each kept in its own order: the i-th of n triples sits at
    (i + 1/2) / n of the way, so any front of the merged list (train.n_tasks, warmup.n_tasks, train.val_size,
    eval.limit) holds each list in its share."""
    keyed = [
        ((i + 0.5) / len(triples), k, triple) for k, triples in enumerate(lists) for i, triple in enumerate(triples)
    ]
    return [triple for _, _, triple in sorted(keyed, key=lambda key: key[:2])]


def mixed_partition(task, n_meta: int) -> Partition:
    """`task.mixture`'s tasks, each partitioned alone and given its own Prompt separator, then interleaved split by
    split; the first `n_meta` interleaved meta-training triples (0 = all). Warm-up takes the front of the interleaved
    warm-up triples (warmup.n_tasks), so it too holds every task in its share."""
    parts = []
    for mixed in task.mixture:
        splits = load_task(mixed.name, mixed.n_train, mixed.n_test, task.seed)
        part = partition(splits, mixed.n_warmup, mixed.n_val, mixed.n_meta)
        if mixed.separator is not None:
            part = Partition(*([replace(t, separator=mixed.separator) for t in part.split(s)] for s in SPLITS))
        parts.append(part)
    _refuse_leaks(task.mixture, parts)
    merged = {name: interleave([part.split(name) for part in parts]) for name in SPLITS}
    merged["meta"] = merged["meta"][: n_meta or None]
    return Partition(**merged)


def _refuse_leaks(mixture, parts: list[Partition]) -> None:
    """Each task's cut keeps its own held-out triples out of its training, but two tasks can hold the same question:
    the people tasks describe the same people under one task.seed, with the same query and answer. A training triple
    of one task that asks what another validates or tests on would make that task's numbers measure memory."""
    held_out: dict[tuple[str, str], set[str]] = {}
    for mixed, part in zip(mixture, parts):
        for triple in part.val + part.test + part.ood:
            held_out.setdefault((triple.query, triple.response), set()).add(mixed.name)
    for mixed, part in zip(mixture, parts):
        for triple in part.warmup + part.meta:
            others = held_out.get((triple.query, triple.response), set()) - {mixed.name}
            if others:
                raise ConfigError(
                    f"task.mixture: {mixed.name}'s training triples ask what {sorted(others)[0]} validates or tests "
                    f"on (e.g. {triple.query!r} →{triple.response!r}); lower {mixed.name}'s n_meta or n_warmup"
                )


def load_partition(cfg) -> Partition:
    """The partition a run config describes (`cfg`: a RunConfig; task, warm-up and meta-training sizes)."""
    t = cfg.task
    if t.mixture:
        return mixed_partition(t, cfg.train.n_tasks)
    return partition(load_task(t.name, t.n_train, t.n_test, t.seed), cfg.warmup.n_tasks, t.n_val, cfg.train.n_tasks)
