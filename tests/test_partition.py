"""The partition of a task's triples: warm-up, meta-training and validation never share a context, validation
does not move when the warm-up or the budget changes, and `promptgd eval --split val` reads it."""

import json

import pytest

from conftest import DEVICE, tiny_config
from promptgd.cli import main
from promptgd.data.partition import load_partition, partition
from promptgd.data.triples import Splits, Triple, write_jsonl
from promptgd.train import recipe as train_recipe


def paragraphs(n_contexts: int, questions: int = 3) -> list[Triple]:
    """SQuAD-like: several questions per context, interleaved the way a seeded sample of questions is."""
    return [
        Triple(f"Paragraph {c}.", f"Question {q} on {c}?", f" {c}-{q}")
        for q in range(questions)
        for c in range(n_contexts)
    ]


def contexts(triples):
    return {t.context for t in triples}


def test_parts_are_disjoint_in_contexts_and_cover_the_train_split():
    train = paragraphs(10)
    part = partition(Splits(train=train, test=[]), n_warmup=4, n_val=5, n_meta=0)
    assert not contexts(part.warmup) & contexts(part.meta) and not contexts(part.meta) & contexts(part.val)
    assert not contexts(part.warmup) & contexts(part.val)
    assert (
        sorted(part.warmup + part.meta + part.val, key=train.index) == train
    )  # whole contexts: nothing split, nothing lost
    assert len(part.val) == 6 and len(part.warmup) == 6  # at least the asked-for size, in whole paragraphs of 3


def test_triples_of_one_source_stay_together_though_their_contexts_differ():
    # WikiText-like: each paragraph gives several triples whose contexts are ever longer prefixes of it,
    # interleaved as a seeded sample leaves them.
    train = [
        Triple(f"Paragraph {p} " + "word " * k, "the", f" {p}-{k}", source=f"valid:{p}")
        for k in range(3)
        for p in range(8)
    ]
    part = partition(Splits(train=train, test=[]), n_warmup=4, n_val=4, n_meta=0)
    sources = [{t.source for t in split} for split in (part.warmup, part.meta, part.val)]
    assert not sources[0] & sources[1] and not sources[1] & sources[2] and not sources[0] & sources[2]
    assert len(part.val) == 6 and len(part.warmup) == 6  # two whole paragraphs of three each


def test_validation_does_not_depend_on_warmup_or_budget():
    cfg = tiny_config("task.n_train=60", "task.n_val=10")
    reference = load_partition(cfg)
    for changed in (
        tiny_config("task.n_train=60", "task.n_val=10", "warmup.n_tasks=20"),
        tiny_config("task.n_train=60", "task.n_val=10", "train.n_tasks=7"),
    ):
        part = load_partition(changed)
        assert part.val == reference.val and part.test == reference.test
    part = load_partition(tiny_config("task.n_train=60", "task.n_val=10", "warmup.n_tasks=20", "train.n_tasks=7"))
    assert len(part.meta) == 7 and part.meta[0] not in part.warmup and len(part.warmup) == 20


@pytest.mark.integration
def test_meta_training_never_sees_warmup_or_validation_triples(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(
        train_recipe,
        "format_warmup",
        lambda model, tok, triples, *a, **k: seen.setdefault("warmup", list(triples)) and [],
    )
    original = train_recipe.MetaTrainer

    def recording(cfg, tokenizer, param, tasks, val, out, task_b=()):
        seen["meta"], seen["val"] = list(tasks), list(val)
        return original(cfg, tokenizer, param, tasks, val, out, task_b)

    monkeypatch.setattr(train_recipe, "MetaTrainer", recording)
    cfg = tiny_config(
        "task.n_train=30",
        "task.n_val=6",
        "warmup.n_tasks=6",
        "train.val_every=2",
        "train.val_size=4",
        "train.n_tasks=4",
    )
    train_recipe.run_train(cfg, tmp_path / "run", progress=False)
    assert len(seen["warmup"]) == 6 and len(seen["meta"]) == 4 and len(seen["val"]) == 6  # it checks the first val_size
    assert not contexts(seen["warmup"]) & contexts(seen["meta"]) and not contexts(
        seen["meta"] + seen["warmup"]
    ) & contexts(seen["val"])


def test_a_train_split_that_leaves_no_meta_training_triples_names_the_settings(tmp_path):
    with pytest.raises(ValueError, match="task.n_train=12 leaves no meta-training triples"):
        train_recipe.run_train(
            tiny_config("task.n_train=12", "task.n_val=8", "warmup.n_tasks=4"), tmp_path / "run", progress=False
        )


@pytest.mark.integration
def test_cli_eval_on_the_validation_split(tmp_path):
    test, train = paragraphs(3, 1), paragraphs(8, 2)
    write_jsonl(test, tmp_path / "t.jsonl")
    write_jsonl(train, tmp_path / "t.train.jsonl")
    main(
        [
            "eval",
            f"model.device={DEVICE}",
            "eval.max_new_tokens=2",
            "task.n_val=3",
            "--model",
            "tiny:llama",
            "--task",
            f"jsonl:{tmp_path / 't.jsonl'}",
            "--modes",
            "nc",
            "--split",
            "val",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    summary = json.loads((tmp_path / "x" / "summary.json").read_text())
    assert summary["split"] == "val" and summary["n"] == 4  # two whole contexts of two questions
    asked = {json.loads(line)["context"] for line in (tmp_path / "x" / "predictions.jsonl").read_text().splitlines()}
    assert asked == {"Paragraph 6.", "Paragraph 7."} and not asked & contexts(test)


def test_a_split_the_task_does_not_have_is_one_line_and_exit_2(tmp_path, capsys):
    write_jsonl(paragraphs(3, 1), tmp_path / "t.jsonl")
    with pytest.raises(SystemExit) as stopped:
        main(
            [
                "eval",
                f"model.device={DEVICE}",
                "--model",
                "tiny:llama",
                "--task",
                f"jsonl:{tmp_path / 't.jsonl'}",
                "--split",
                "ood",
                "--out",
                str(tmp_path / "x"),
            ]
        )
    assert stopped.value.code == 2 and "eval.split=ood: task jsonl:" in capsys.readouterr().err
