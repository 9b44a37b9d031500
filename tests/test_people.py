"""The `character_descriptions` and `reversal` tasks: sizes, determinism, train/test disjointness, format."""

import os
import re
import string
import subprocess
import sys
import time

import pytest

from promptgd.data import people
from promptgd.data.tasks import TASKS

N_TRAIN, N_TEST = 5000, 500


@pytest.fixture(scope="module")
def sample():
    return people.sample_people(N_TRAIN, N_TEST, seed=0)


@pytest.fixture(scope="module")
def tasks():
    return {
        "character_descriptions": people.character_descriptions(N_TRAIN, N_TEST, seed=0),
        "reversal": people.reversal(N_TRAIN, N_TEST, seed=0),
    }


def _occurs(phrase: str, text: str) -> bool:
    """`phrase` occurs in the lower-case `text` as whole words, ignoring case (the context
    capitalises the description's first letter). Whole words, because "Ann Lee" inside
    "Ann Leeds" is no leak. str.find, because a regex takes seconds over 10,000 contexts."""
    phrase = phrase.lower()
    start = text.find(phrase)
    while start != -1:
        end = start + len(phrase)
        if not _word_char(text[start - 1 : start]) and not _word_char(text[end : end + 1]):
            return True
        start = text.find(phrase, start + 1)
    return False


def _word_char(c: str) -> bool:
    return c.isalnum() or c in ("'", "-")  # not `c in "'-"`: the empty string is in every string


def test_both_tasks_are_named():
    assert TASKS["character_descriptions"] is people.character_descriptions
    assert TASKS["reversal"] is people.reversal


@pytest.mark.parametrize("builder", [people.character_descriptions, people.reversal])
@pytest.mark.parametrize("n_train,n_test", [(0, 3), (3, 0), (17, 5), (N_TRAIN, N_TEST)])
def test_sizes(builder, n_train, n_test):
    splits = builder(n_train, n_test, seed=1)
    assert (len(splits.train), len(splits.test)) == (n_train, n_test)


def test_large_sizes_are_quick():
    start = time.perf_counter()
    splits = people.character_descriptions(20000, 2000, seed=3)
    assert time.perf_counter() - start < 5
    assert len({t.response for t in splits.train + splits.test}) == 22000


def test_deterministic_by_seed():
    for builder in (people.character_descriptions, people.reversal):
        assert builder(200, 50, seed=7) == builder(200, 50, seed=7)
        other = builder(200, 50, seed=8)
        assert other.train != builder(200, 50, seed=7).train
        assert other.test != builder(200, 50, seed=7).test


def test_deterministic_across_processes():
    """Sets of names and words are built along the way; their iteration order varies with
    PYTHONHASHSEED, so check that none of it leaks into the output."""
    code = "from promptgd.data import people; print(people.reversal(300, 30, seed=2))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        ).stdout
        for hash_seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_test_split_ignores_n_train_and_splits_are_prefix_stable():
    small = people.character_descriptions(100, 20, seed=5)
    large = people.character_descriptions(300, 60, seed=5)
    assert people.character_descriptions(0, 20, seed=5).test == small.test
    assert large.train[:100] == small.train
    assert large.test[:20] == small.test


def test_tasks_hold_the_same_people_in_the_same_order(tasks):
    cd, rev = tasks["character_descriptions"], tasks["reversal"]
    for a, b in zip(cd.train + cd.test, rev.train + rev.test, strict=True):
        assert (a.query, a.response) == (b.query, b.response)
        assert a.context != b.context
        # Same words, only the order inside the first sentence differs.
        words = [sorted(re.findall(r"[\w'-]+", t.context.lower())) for t in (a, b)]
        assert words[0] == words[1]


def test_context_word_order(tasks):
    for t in tasks["reversal"].train + tasks["reversal"].test:
        assert t.context.startswith(t.response[1:] + " ")
    for t in tasks["character_descriptions"].train + tasks["character_descriptions"].test:
        fact = t.context.split(". ")[0].removesuffix(".")
        assert fact.startswith("The ") and fact.endswith(t.response)  # the name ends the sentence


def test_names_and_descriptions_unique(sample):
    everyone = sample[0] + sample[1]
    assert len({p.name for p in everyone}) == len(everyone)
    assert len({(p.first, p.last) for p in everyone}) == len(everyone)
    assert len({p.description for p in everyone}) == len(everyone)


def test_train_and_test_disjoint(sample, tasks):
    train, test = sample
    assert not {p.last for p in train} & {p.last for p in test}
    assert not {p.description for p in train} & {p.description for p in test}
    # Stronger: no test name or test description appears anywhere in any train context, of
    # either task (every context of a train person, with or without its second sentence).
    train_text = "\n".join(t.context for task in tasks.values() for t in task.train).lower()
    for person in test:
        assert not _occurs(person.name, train_text), person.name
        assert not _occurs(person.description, train_text), person.description


def test_disjointness_check_catches_a_leak(sample, tasks):
    train, _ = sample
    train_text = "\n".join(t.context for t in tasks["reversal"].train).lower()
    assert _occurs(train[0].name, train_text) and _occurs(train[0].description, train_text)
    assert _occurs("ann lee", "x ann lee.") and not _occurs("ann lee", "x ann leeds.")


def test_test_descriptions_use_held_out_slot_values(sample, tasks):
    """Every open-slot value (town, root, title, invention) of a test description is absent from
    all train contexts, so even the fillers are new, not only their combination."""
    _, test = sample
    train_text = "\n".join(t.context for task in tasks.values() for t in task.train).lower()
    for person in test:
        family = people.FAMILIES[person.family]
        # Recover the slot values by matching the template against the description.
        parts = re.split(r"\{[a-z0-9]+\}", family.description)
        pattern = "(.+?)".join(re.escape(part) for part in parts)
        values = re.fullmatch(pattern, person.description).groups()
        fields = [f for _, f, _, _ in string.Formatter().parse(family.description) if f]
        open_values = [v for f, v in zip(fields, values) if f.rstrip("0123456789") in people.OPEN_SLOTS]
        assert open_values, person.family
        for value in open_values:
            assert not _occurs(value, train_text), (value, person.description)


def test_query_rewords_the_context(sample):
    for person in sample[0] + sample[1]:
        # The query shares slot values with the context but neither the canonical phrase nor
        # the fact sentence (of either task) nor the name.
        assert person.description.lower() not in person.query.lower()
        for name_first in (False, True):
            fact = person.triple(name_first).context.split(". ")[0].rstrip(".")
            assert fact.lower() not in person.query.lower()
        assert person.name not in person.query


def test_triple_format(tasks):
    for task in tasks.values():
        for t in task.train + task.test:
            assert t.response.startswith(" ") and not t.response.startswith("  ")
            assert t.response[-1].isalpha()
            assert t.response[1:] in t.context
            assert t.query[-1].isalpha() and t.query == t.query.strip()
            assert "  " not in t.context and "{" not in t.context + t.query
            assert t.context.endswith(".")
            assert len(t.context.split()) < 60
            assert t.gold_answers == (t.response,)


def test_names_are_plain_ascii(sample):
    for person in sample[0] + sample[1]:
        for part in (person.first, person.last):
            assert re.fullmatch(r"[A-Za-z'-]+", part), part


def test_diversity(sample):
    train, _ = sample
    assert len({p.first for p in train}) >= 1500
    assert len({p.last for p in train}) >= 1500
    assert len({p.family for p in train}) == len(people.FAMILIES) - len(people.HELDOUT_FAMILIES)
    assert len({(p.family, p.paraphrase) for p in train}) >= 70
    assert 0.3 < sum(bool(p.extra) for p in train) / len(train) < 0.7


def test_families_are_well_formed():
    assert len(people.FAMILIES) >= 20
    for key, family in people.FAMILIES.items():
        fields = {f for _, f, _, _ in string.Formatter().parse(family.description) if f}
        assert {f.rstrip("0123456789") for f in fields} & set(people.OPEN_SLOTS), key
        assert len(family.queries) >= 3, key
        assert len(set(family.queries)) == len(family.queries), key
        for query in family.queries:
            # Each query names everything the description names, so it identifies the person.
            assert {f for _, f, _, _ in string.Formatter().parse(query) if f} == fields, query
            assert family.description not in query


def test_docstring_examples_are_real():
    """The module docstring shows item 2 of the seed-0 train split; keep it in step with the code."""
    for builder in (people.character_descriptions, people.reversal):
        t = builder(3, 0, seed=0).train[2]
        for text in (t.context, t.query, t.response):
            assert f'"{text}"' in people.__doc__, text


def test_heldout_families_appear_only_in_the_ood_split():
    splits = people.character_descriptions(600, 100, seed=0)
    train_people, test_people = people.sample_people(600, 100, seed=0)
    ood_people = people.sample_heldout_people(100, seed=0)
    assert {p.family for p in ood_people} == set(people.HELDOUT_FAMILIES)
    assert not {p.family for p in train_people + test_people} & set(people.HELDOUT_FAMILIES)
    train_words = {w for t in splits.train for w in (t.context + " " + t.query).split()}
    train_surnames = {p.last for p in train_people}
    assert not {p.last for p in ood_people} & train_surnames  # test-only surnames, as in the test split
    assert len(splits.ood) == 100 and all(t.response == " " + p.name for t, p in zip(splits.ood, ood_people))
    # The held-out wordings really are new: every ood query has words that no training context or query uses.
    assert all(set(t.query.split()) - train_words for t in splits.ood)
    reversal = people.reversal(600, 100, seed=0)
    assert [t.query for t in reversal.ood] == [t.query for t in splits.ood]
