"""`notes`: invented project status notes, text that no training task resembles, to test what an absorber does with
a user's own writing (the absorber issue's new-text task). Evaluation only: no mixture or preset trains on it.

A note is a few facts about one invented project, in the voice of a weekly status update (not a biography, a
Wikipedia paragraph or running prose), and each fact is asked back by a cloze query that rewords it::

    context:  "Project Tamsel status, week 14. Ilse Varga now leads the calibration team, taking over from ...
               The budget request for the second trial is 310,000 euros. ..."
    query:    "For its second trial, Project Tamsel asks for a budget of"
    response: " 310,000 euros"

Every note names its own project, so a query names the note it is about. Train and test draw project names from
disjoint halves of the invented-word pool and people from disjoint halves of the surnames (as data/people.py does),
on separate random streams: the test split depends only on (seed, n_test). The response always occurs in the note and
never in the query.
"""

from __future__ import annotations

import random

from promptgd.data import people
from promptgd.data.triples import Splits, Triple

TASK = "notes"
FACTS_PER_NOTE = 4

TEAMS = ("calibration", "firmware", "sensor", "logistics", "field", "design", "testing", "procurement")
PARTS = ("enclosures", "batteries", "antennas", "cables", "mounting brackets", "circuit boards")
SENSORS = ("humidity probes", "pressure gauges", "flow meters", "thermistors", "strain gauges")
ORDINALS = ("second", "third", "fourth", "fifth", "sixth", "seventh")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "September", "October", "November")
COMPANY_ENDS = ("Plastics", "Metalworks", "Electronics", "Components", "Industries", "Supply")


def _fact(rng: random.Random, kind: str, project: str, person, place: str, company: str) -> tuple[str, str, str]:
    """(sentence in the note, cloze query, answer) of one fact."""
    if kind == "lead":
        team, before = rng.choice(TEAMS), person()
        lead = person()
        return (
            f"{lead} now leads the {team} team, taking over from {before}, who moves to another group.",
            f"The {team} team of Project {project} is now led by",
            lead,
        )
    if kind == "office":
        floor = rng.choice(ORDINALS)
        return (
            f"The {place} office moved to the {floor} floor of the {company} building.",
            f"At the {company} building, the {place} office of Project {project} is now on the",
            f"{floor} floor",
        )
    if kind == "review":
        date = f"{rng.randint(2, 27)} {rng.choice(MONTHS)}"
        return (
            f"The next board review is on {date} at {rng.randint(9, 16)}:00.",
            f"Project {project}'s next board review takes place on",
            date,
        )
    if kind == "budget":
        amount = f"{rng.randint(12, 95) * 10},000 euros"
        return (
            f"The budget request for the second trial is {amount}.",
            f"For its second trial, Project {project} asks for a budget of",
            amount,
        )
    if kind == "supplier":
        part = rng.choice(PARTS)
        return (
            f"The supplier for the {part} is now {company} in {place}; the previous one missed two deliveries.",
            f"Project {project} now buys its {part} from",
            company,
        )
    sensor, drift, days = rng.choice(SENSORS), rng.randint(2, 9), rng.randint(5, 20)
    return (
        f"The field trial found that the {sensor} drift by about {drift} percent after {days} days.",
        f"In the field trial of Project {project}, the {sensor} drifted by about",
        f"{drift} percent",
    )


KINDS = ("lead", "office", "review", "budget", "supplier", "drift")


def _note(rng: random.Random, project: str, projects: list[str], first_names, surnames, towns) -> list[Triple]:
    """One note about `project`, as one triple per fact."""
    used: set[str] = set()

    def person() -> str:  # a name no other fact of this note uses, so every answer is unambiguous
        while (name := f"{rng.choice(first_names)} {rng.choice(surnames)}") in used:
            pass
        used.add(name)
        return name

    place, company = rng.choice(towns), f"{rng.choice(projects)} {rng.choice(COMPANY_ENDS)}"
    facts = [_fact(rng, kind, project, person, place, company) for kind in rng.sample(KINDS, FACTS_PER_NOTE)]
    note = f"Project {project} status, week {rng.randint(2, 40)}. " + " ".join(sentence for sentence, _, _ in facts)
    return [Triple(note, query, " " + answer) for _, query, answer in facts]


def _notes(n_questions: int, rng: random.Random, projects: list[str], surnames: list[str]) -> list[Triple]:
    firsts, _ = people._name_tables()
    first_names = sorted({n for table in firsts.values() for n in table})
    towns = sorted(people._open_pools()["town"])
    triples: list[Triple] = []
    for project in projects:
        if len(triples) >= n_questions:
            break
        triples += _note(rng, project, projects, first_names, surnames, towns)
    return triples[:n_questions]


def build_notes(n_train: int, n_test: int, seed: int) -> Splits:
    """`n_train` and `n_test` count questions (4 per note)."""
    words = sorted(people._open_pools()["root"])
    _, lasts = people._name_tables()
    surnames = sorted({n for table in lasts.values() for n in table})
    random.Random(f"notes-split:{seed}").shuffle(words)
    random.Random(f"notes-names:{seed}").shuffle(surnames)
    half, half_names = len(words) // 2, len(surnames) // 2

    def split(name: str, pool: list[str], names: list[str], n: int) -> list[Triple]:
        rng = random.Random(f"notes-{name}:{seed}")
        return _notes(n, rng, rng.sample(pool, min(len(pool), n // FACTS_PER_NOTE + 1)), names)

    return Splits(
        train=split("train", words[:half], surnames[:half_names], n_train),
        test=split("test", words[half:], surnames[half_names:], n_test),
    )
