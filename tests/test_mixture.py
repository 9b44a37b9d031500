"""A mixture of tasks (task.name=mixture): each task cut as its own runs cut it, no task trained on what another
holds out, proportional interleaving, each task's Prompt separator kept, and a run that trains on it."""

import re

import pytest

from conftest import DEVICE, tiny_config
from promptgd.config import ConfigError, load_config
from promptgd.data.encoding import Encoder
from promptgd.data.partition import interleave, load_partition
from promptgd.data.triples import Triple, read_jsonl, write_jsonl
from promptgd.models.loading import load_model
from promptgd.train import recipe as train_recipe


def continuation_task(tmp_path, n_train: int = 12, n_test: int = 3) -> str:
    """WikiText-like: queries continue their context after a space."""
    rows = [Triple(f"Text {i} goes on", "and", f" on {i}") for i in range(n_train + n_test)]
    write_jsonl(rows[:n_test], tmp_path / "cont.jsonl")
    write_jsonl(rows[n_test:], tmp_path / "cont.train.jsonl")
    return f"jsonl:{tmp_path / 'cont.jsonl'}"


def mixture(tmp_path, *extra: str):
    cont = continuation_task(tmp_path)
    return tiny_config(
        "task.name=mixture",
        "task.n_train=0",
        "task.n_test=0",
        "task.n_val=0",
        "task.mixture=[{name: character_descriptions, n_train: 40, n_test: 6, n_val: 8, n_warmup: 4, n_meta: 16},"
        " {name: reversal, n_train: 40, n_test: 6, n_val: 8, n_meta: 8},"
        f" {{name: '{cont}', n_train: 0, n_test: 0, n_val: 2, n_warmup: 2, separator: ' '}}]",
        "warmup.n_tasks=6",
        *extra,
    )


def alone(name: str, *sizes: str):
    return load_partition(tiny_config(f"task.name={name}", *sizes))


def test_each_task_is_cut_as_its_own_runs_cut_it_and_never_trains_on_their_validation_or_test(tmp_path):
    part = load_partition(mixture(tmp_path))
    people = alone("character_descriptions", "task.n_train=40", "task.n_test=6", "task.n_val=8", "warmup.n_tasks=4")
    reversal = alone("reversal", "task.n_train=40", "task.n_test=6", "task.n_val=8")
    for own in (people, reversal):
        assert [t for t in part.val if t in own.val] == own.val  # the triples the task's own runs validate on
        assert [t for t in part.test if t in own.test] == own.test
    assert [t for t in part.meta if t in people.meta] == people.meta[:16]  # n_meta: the mixture's proportions
    assert [t for t in part.meta if t in reversal.meta] == reversal.meta[:8]
    assert len(part.meta) == 16 + 8 + (12 - 2 - 2)
    trained = {t.context for t in part.meta + part.warmup}
    assert not trained & {t.context for t in part.val + part.test}


def test_every_front_of_the_interleaved_list_holds_each_task_in_its_share():
    a = [Triple(f"a{i}", "q", " r") for i in range(8)]
    b = [Triple(f"b{i}", "q", " r") for i in range(4)]
    merged = interleave([a, b])
    assert [t for t in merged if t in a] == a and [t for t in merged if t in b] == b  # each keeps its order
    for start in range(0, 12, 3):
        batch = merged[start : start + 3]
        assert sum(t in a for t in batch) == 2 and sum(t in b for t in batch) == 1


def test_each_task_keeps_its_prompt_separator(tmp_path):
    part = load_partition(mixture(tmp_path))
    _, tokenizer = load_model("tiny:llama", device=DEVICE)
    encoder = Encoder(tokenizer, mixture(tmp_path).format)
    cont = next(t for t in part.test if t.context.startswith("Text"))
    person = next(t for t in part.test if not t.context.startswith("Text"))
    assert cont.separator == " " and person.separator is None
    assert (
        encoder.prompt(cont)
        == encoder.text(cont.context + " ") + tokenizer(cont.query, add_special_tokens=False)["input_ids"]
    )
    assert (
        encoder.prompt(person)
        == encoder.text(person.context + "\n") + tokenizer(person.query, add_special_tokens=False)["input_ids"]
    )
    write_jsonl([cont, person], tmp_path / "both.jsonl")
    assert read_jsonl(tmp_path / "both.jsonl") == [cont, person]  # the separator survives a JSONL round trip


def test_a_task_that_would_train_on_what_another_holds_out_is_refused():
    # Both people tasks describe the same people under one seed: character descriptions validates on the last 8 of
    # its 40, which reversal, cut from 60, would meta-train on.
    cfg = tiny_config(
        "task.name=mixture",
        "task.n_train=0",
        "task.n_test=0",
        "task.n_val=0",
        "task.mixture=[{name: character_descriptions, n_train: 40, n_test: 6, n_val: 8},"
        " {name: reversal, n_train: 60, n_test: 6, n_val: 8}]",
    )
    with pytest.raises(ConfigError, match="reversal's training triples ask what character_descriptions validates"):
        load_partition(cfg)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["task.name=mixture"], "task.mixture: set it together with task.name=mixture"),
        (["task.mixture=[{name: reversal}]"], "task.mixture: set it together with task.name=mixture"),
        (["task.name=mixture", "task.mixture=[{name: reversal}]"], "set task.n_train, task.n_test and task.n_val to 0"),
        (
            ["task.name=mixture", "task.n_train=0", "task.n_test=0", "task.n_val=0", "task.mixture=[{name: mixture}]"],
            "an entry cannot itself be a mixture",
        ),
        (
            ["task.name=mixture", "task.n_train=0", "task.n_test=0", "task.n_val=0", "task.mixture=[{nam: reversal}]"],
            "unknown key 'task.mixture[0].nam'",
        ),
        (
            ["task.name=mixture", "task.n_train=0", "task.n_test=0", "task.n_val=0", "task.mixture=[{n_test: 3}]"],
            "task.mixture[0]: missing key 'name'",
        ),
        (
            [
                "task.name=mixture",
                "task.n_train=0",
                "task.n_test=0",
                "task.n_val=0",
                "task.mixture=[{name: reversal, n_warmup: 8}]",
            ],
            "warmup.n_tasks=0 with task.mixture entries that cut 8 warm-up triples",
        ),
    ],
)
def test_a_wrong_mixture_is_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, overrides)


@pytest.mark.integration
def test_a_run_warms_up_and_meta_trains_on_the_mixture(tmp_path, monkeypatch):
    seen = {}
    warmup = train_recipe.format_warmup

    def recording_warmup(model, tokenizer, triples, cfg, *args, **kwargs):
        seen["warmup"] = triples[: cfg.n_tasks]
        return warmup(model, tokenizer, triples, cfg, *args, **kwargs)

    monkeypatch.setattr(train_recipe, "format_warmup", recording_warmup)
    cfg = mixture(tmp_path, "warmup.n_tasks=4", "train.n_tasks=6")
    path = train_recipe.run_train(cfg, tmp_path / "run", progress=False)
    assert (path / "model.safetensors").is_file()
    assert {t.separator for t in seen["warmup"]} == {None, " "}  # both warmed-up tasks, each in its own format
