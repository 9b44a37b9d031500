"""Two synthetic tasks about invented people: `character_descriptions` and `reversal`.

Each invented person has a name and exactly one description, a noun phrase such as "the
playwright who wrote "Northern Thieves"". The context states the fact in one sentence,
the query asks for the name with a *paraphrase* of the description that stops where the name
comes, and the response is the name with its leading space.

* `character_descriptions` puts the description first, so the name follows the words that
  identify it, the order the query asks in::

      context:  "The playwright who wrote "Northern Thieves" was Chantal Ziegert."
      query:    "Audiences who saw "Northern Thieves" on stage were watching a play by"
      response: " Chantal Ziegert"

* `reversal` puts the name first. The query still asks for the name given the description, so a
  model that has only learned "name -> description" has to answer in the reverse direction (the
  "reversal curse")::

      context:  "Chantal Ziegert was the playwright who wrote "Northern Thieves"."
      query:    "Audiences who saw "Northern Thieves" on stage were watching a play by"
      response: " Chantal Ziegert"

(Both are item 2 of the train split for seed 0. About half the contexts add a neutral second
sentence such as "Several biographies describe it in detail.")

With the same seed, both tasks hold the same people with the same descriptions, query wording and
optional second sentence, in the same order. Only the order inside the first sentence of the
context differs, so the two tasks can be compared item by item.

Descriptions come from `FAMILIES` (its wordings, like all word lists here, are in
data/builtin/people_vocabulary.json). Each family has one canonical phrase, used only in the
context, and three or four query templates that reword it (the query never contains the
canonical phrase). Slots are filled from two kinds of vocabulary:
* open slots (`OPEN_SLOTS`): invented towns, invented proper nouns ("roots", as in Mount
  {root} or the {root} script), titles and inventions;
* closed slots (`CLOSED_SLOTS`): years, building types, fields and so on.
Every family has at least one open slot. Names come from Faker's first- and last-name tables for
several locales. A person's first and last names come from the same locale.

Disjointness rule, per seed. `TEST_SHARE` of every open-slot pool and of the pooled surnames is
held out for test; the rest is for train. So
* every open-slot value (town, root, title or invention) in a test description is one that no
  train triple contains, so no test description occurs in train;
* every test person has a surname that no train person has, so no full name (first + last
  pair) occurs in both splits. First names and closed-slot words are shared by the splits.
Within a split, full names and descriptions are unique. Train and test are drawn from separate
random streams, so the test split depends only on (seed, n_test), not on n_train. Both splits
are also prefix-stable: the first k items for a size n > k are the items for size k.

Held-out families. `HELDOUT_FAMILIES` (6 of the 29) appear in neither train nor test: they make a third split,
`ood`, of n_test people with test-only surnames and slot values (its own random stream), whose description and
query wordings no training triple shares.

Nothing uses Faker's random generator, which is shared by all Faker instances. The name tables
are read as plain data and sampled with our own `random.Random`, so results depend only on the
seed and the installed Faker version.
"""

from __future__ import annotations

import importlib
import json
import random
import re
import string
from dataclasses import dataclass
from functools import cache
from importlib import resources

from promptgd.data.triples import Splits, Triple

TEST_SHARE = 0.2  # share of each open-slot pool and of the surnames that only test may use
EXTRA_SENTENCE_P = 0.5  # chance that a context gets a neutral second sentence after the fact


# --------------------------------------------------------------------------------------------
# Vocabulary. The word lists live in data/builtin/people_vocabulary.json, whose "_about" key says
# what each section holds: "families" (description and query wordings), "extra_sentences",
# "closed_slots", and the parts that open-slot values are built from ("towns", "invented_words",
# "titles", "inventions"). Their order is part of the task: the draws index into these lists.

_VOCABULARY = json.loads(
    resources.files("promptgd.data").joinpath("builtin/people_vocabulary.json").read_text(encoding="utf-8")
)


@dataclass(frozen=True)
class Family:
    description: str  # canonical noun phrase, lower-case initial; used only in the context
    queries: tuple[str, ...]  # paraphrases that end where the name belongs
    verb: str = "was"  # links description and name in the context sentence


# A placeholder "{town2}" draws from the same pool as "{town}", with a different value. Every query
# template uses exactly the canonical phrase's placeholders, so the query holds everything needed
# to identify the person.
FAMILIES: dict[str, Family] = {
    key: Family(**{**spec, "queries": tuple(spec["queries"])}) for key, spec in _VOCABULARY["families"].items()
}
EXTRA_SENTENCES: tuple[str, ...] = tuple(_VOCABULARY["extra_sentences"])
CLOSED_SLOTS: dict[str, tuple[str, ...]] = {
    "year": tuple(str(y) for y in range(1850, 2016)),
    **{slot: tuple(words) for slot, words in _VOCABULARY["closed_slots"].items()},
}
OPEN_SLOTS = ("town", "root", "title", "invention")  # the keys of _open_pools()


# --------------------------------------------------------------------------------------------
# Names.

# Locale -> how often a person comes from it. Uniform weights would make almost a third of the
# people Nordic; these give 30% English-speaking names and 20% Nordic ones.
LOCALE_WEIGHTS = {
    "en_US": 3,
    "en_GB": 2,
    "en_IE": 1,
    "de_DE": 2,
    "fr_FR": 2,
    "es_ES": 2,
    "it_IT": 2,
    "nl_NL": 1,
    "pt_PT": 1,
    "sv_SE": 1,
    "da_DK": 1,
    "no_NO": 1,
    "fi_FI": 1,
}
# Plain ASCII letters, at most one hyphenated part, and the prefixes Mc/Mac/O'/D'. This keeps
# "McDonald", "O'Neill" and "Jean-Pierre" but drops accents, spaces ("van Gils") and
# multi-word surnames, so a name splits into tokens the same way wherever it appears.
_NAME_RE = re.compile(r"(?:Mc|Mac|O'|D')?[A-Z][a-z]+(?:-[A-Z][a-z]+)?")


@cache
def _name_tables() -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Per locale, the usable first and last names from Faker's tables, sorted."""
    firsts, lasts = {}, {}
    for locale in LOCALE_WEIGHTS:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        # Some tables are frequency dicts; iterating one gives the names. Sorting makes the
        # order independent of how Faker stores them.
        firsts[locale] = tuple(sorted({n for n in provider.first_names if _NAME_RE.fullmatch(n)}))
        lasts[locale] = tuple(sorted({n for n in provider.last_names if _NAME_RE.fullmatch(n)}))
    return firsts, lasts


@cache
def _open_pools() -> dict[str, tuple[str, ...]]:
    """Every value of every open slot, sorted; the split into train and test happens per seed."""
    firsts, lasts = _name_tables()
    # An invented word must not also be a name, or "the first mayor of Linda" could be read
    # as being about a person.
    names = {n for table in (firsts, lasts) for locale_names in table.values() for n in locale_names}
    towns, words, title_parts = _VOCABULARY["towns"], _VOCABULARY["invented_words"], _VOCABULARY["titles"]
    syllables = [o + v + m for o in words["onsets"] for v in words["vowels"] for m in words["middles"]]
    english_towns = {p + s for p in towns["prefixes"] for s in towns["suffixes"]}

    def usable(candidates: set[str]) -> set[str]:
        # Three-letter words such as "Ala" look like abbreviations rather than names.
        candidates = {w[0].upper() + w[1:] for w in candidates if len(w) >= 4}
        return {w for w in candidates - names - english_towns if not any(b in w.lower() for b in words["blocked"])}

    invented_towns = usable({s + "a" for s in syllables})
    roots = usable({s + v + c for s in syllables for v in words["vowels"] for c in words["codas"]})
    adjectives, nouns, plurals = title_parts["adjectives"], title_parts["nouns"], title_parts["plurals"]
    titles = (
        [f"The {a} {n}" for a in adjectives for n in nouns]
        + [f"The {n} of {p}" for n in nouns for p in plurals]
        + [f"{a} {p}" for a in adjectives for p in plurals]
    )
    invention_parts = _VOCABULARY["inventions"]
    inventions = [f"{m} {d}" for m in invention_parts["modifiers"] for d in invention_parts["devices"]]
    return {
        "town": tuple(sorted((english_towns - names) | invented_towns)),
        "root": tuple(sorted(roots)),
        "title": tuple(sorted(set(titles))),
        "invention": tuple(sorted(set(inventions))),
    }


def _hold_out(values: tuple[str, ...], rng: random.Random) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split values into (train, test), with TEST_SHARE of them in test."""
    shuffled = list(values)
    rng.shuffle(shuffled)
    k = round(len(shuffled) * TEST_SHARE)
    return tuple(shuffled[k:]), tuple(shuffled[:k])


# --------------------------------------------------------------------------------------------
# Sampling.


@dataclass(frozen=True)
class Person:
    first: str
    last: str
    family: str  # key into FAMILIES
    paraphrase: int  # index of the query template in FAMILIES[family].queries
    description: str  # canonical phrase, lower-case initial
    query: str
    extra: str  # neutral second sentence of the context, or ""

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    def triple(self, name_first: bool) -> Triple:
        """The triple for `reversal` (name_first) or `character_descriptions`."""
        verb = FAMILIES[self.family].verb
        if name_first:
            fact = f"{self.name} {verb} {self.description}."
        else:
            fact = f"{self.description[0].upper()}{self.description[1:]} {verb} {self.name}."
        context = f"{fact} {self.extra}" if self.extra else fact
        return Triple(context=context, query=self.query, response=" " + self.name)


# Families that no train or same-family test triple uses: the `ood` test split. Its descriptions and query
# wordings are new, so it measures whether meta-training learned to absorb a stated fact or only the mapping from
# this generator's phrasings to names. One family of each broad kind (feats, records, arts, science, trades, sport).
HELDOUT_FAMILIES = ("desert", "sailor", "composer", "linguist", "chef", "captain")
_FAMILY_KEYS = tuple(k for k in FAMILIES if k not in HELDOUT_FAMILIES)
# Placeholder names of each family, in order of first appearance in the canonical phrase.
_FIELDS = {
    key: tuple(dict.fromkeys(f for _, f, _, _ in string.Formatter().parse(fam.description) if f))
    for key, fam in FAMILIES.items()
}


def _draw_split(
    n: int,
    rng: random.Random,
    surnames: dict[str, tuple[str, ...]],
    pools: dict[str, tuple[str, ...]],
    families: tuple[str, ...] = _FAMILY_KEYS,
) -> list[Person]:
    firsts, _ = _name_tables()
    locales = [loc for loc in LOCALE_WEIGHTS if surnames[loc]]
    weights = [LOCALE_WEIGHTS[loc] for loc in locales]
    people: list[Person] = []
    used_names: set[tuple[str, str]] = set()
    used_descriptions: set[str] = set()
    # The pools hold far more names and descriptions than any configured size needs, so a
    # redraw is rare; the limit turns an impossible request into an error instead of a hang.
    tries_left = 100 * n + 1000
    while len(people) < n:
        locale = rng.choices(locales, weights)[0]
        first, last = rng.choice(firsts[locale]), rng.choice(surnames[locale])
        key = rng.choice(families)
        slots: dict[str, str] = {}
        for field in _FIELDS[key]:
            slot = field.rstrip("0123456789")
            choices = pools[slot] if slot in OPEN_SLOTS else CLOSED_SLOTS[slot]
            value = rng.choice(choices)
            while value in slots.values():  # "{town}" and "{town2}" must differ
                value = rng.choice(choices)
            slots[field] = value
        family = FAMILIES[key]
        description = family.description.format(**slots)
        paraphrase = rng.randrange(len(family.queries))
        extra = rng.choice(EXTRA_SENTENCES) if rng.random() < EXTRA_SENTENCE_P else ""
        if first == last or (first, last) in used_names or description in used_descriptions:
            tries_left -= 1
            if tries_left == 0:
                raise ValueError(f"cannot draw {n} people with unique names and descriptions")
            continue
        used_names.add((first, last))
        used_descriptions.add(description)
        people.append(
            Person(first, last, key, paraphrase, description, family.queries[paraphrase].format(**slots), extra)
        )
    return people


def _vocabularies(seed: int) -> tuple[dict, dict, dict, dict]:
    """(train surnames, test surnames) per locale and (train, test) open-slot pools, split per `seed`."""
    _, lasts = _name_tables()
    split_rng = random.Random(f"people/{seed}/split")
    # Sorted for a fixed order: the same surname appears in several locales and must land on
    # the same side in all of them.
    all_surnames = tuple(sorted({n for names in lasts.values() for n in names}))
    train_surnames, test_surnames = (set(s) for s in _hold_out(all_surnames, split_rng))
    pools = {slot: _hold_out(values, split_rng) for slot, values in _open_pools().items()}
    return (
        {loc: tuple(n for n in names if n in train_surnames) for loc, names in lasts.items()},
        {loc: tuple(n for n in names if n in test_surnames) for loc, names in lasts.items()},
        {slot: train_values for slot, (train_values, _) in pools.items()},
        {slot: test_values for slot, (_, test_values) in pools.items()},
    )


def sample_people(n_train: int, n_test: int, seed: int) -> tuple[list[Person], list[Person]]:
    """The (train, test) people both tasks are built from; see the module docstring for the rules."""
    train_surnames, test_surnames, train_pools, test_pools = _vocabularies(seed)
    train = _draw_split(n_train, random.Random(f"people/{seed}/train"), train_surnames, train_pools)
    test = _draw_split(n_test, random.Random(f"people/{seed}/test"), test_surnames, test_pools)
    return train, test


def sample_heldout_people(n: int, seed: int) -> list[Person]:
    """Test people described by the `HELDOUT_FAMILIES` alone, with test-only surnames and slot values."""
    _, test_surnames, _, test_pools = _vocabularies(seed)
    return _draw_split(n, random.Random(f"people/{seed}/ood"), test_surnames, test_pools, HELDOUT_FAMILIES)


def character_descriptions(n_train: int, n_test: int, seed: int) -> Splits:
    """Context: "<Description> was <Name>."; query: a paraphrased description; response: " <Name>"."""
    train, test = sample_people(n_train, n_test, seed)
    return Splits(
        train=[p.triple(name_first=False) for p in train],
        test=[p.triple(name_first=False) for p in test],
        ood=[p.triple(name_first=False) for p in sample_heldout_people(n_test, seed)],
    )


def reversal(n_train: int, n_test: int, seed: int) -> Splits:
    """Context: "<Name> was <description>."; the query still asks for the name."""
    train, test = sample_people(n_train, n_test, seed)
    return Splits(
        train=[p.triple(name_first=True) for p in train],
        test=[p.triple(name_first=True) for p in test],
        ood=[p.triple(name_first=True) for p in sample_heldout_people(n_test, seed)],
    )
