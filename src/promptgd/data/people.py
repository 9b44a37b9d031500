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

Descriptions come from `FAMILIES`. Each family has one canonical phrase, used only in the
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
import random
import re
import string
from dataclasses import dataclass
from functools import cache

from promptgd.data.triples import Splits, Triple

TEST_SHARE = 0.2  # share of each open-slot pool and of the surnames that only test may use
EXTRA_SENTENCE_P = 0.5  # chance that a context gets a neutral second sentence after the fact


# --------------------------------------------------------------------------------------------
# Description families. A placeholder "{town2}" draws from the same pool as "{town}", with a
# different value. Every query template uses exactly the canonical phrase's placeholders, so the
# query holds everything needed to identify the person.


@dataclass(frozen=True)
class Family:
    description: str  # canonical noun phrase, lower-case initial; used only in the context
    queries: tuple[str, ...]  # paraphrases that end where the name belongs
    verb: str = "was"  # links description and name in the context sentence


FAMILIES: dict[str, Family] = {
    "summit": Family(
        "the first person to climb Mount {root}",
        (
            "The first climber to reach the summit of Mount {root} was",
            "Mountaineering histories name the first person to stand on top of Mount {root} as",
            "The earliest recorded ascent of Mount {root} was made by",
            "Mount {root} remained unclimbed until it was conquered by",
        ),
    ),
    "lake_swim": Family(
        "the first person to swim across Lake {root}",
        (
            "The first swimmer ever to cross Lake {root} was",
            "Lake {root} was swum from shore to shore for the first time by",
            "Record books credit the first swimming crossing of Lake {root} to",
            "Nobody had swum the full width of Lake {root} before",
        ),
    ),
    "desert": Family(
        "the first person to cross the {root} Desert on foot",
        (
            "The {root} Desert was first crossed on foot by",
            "The first traveller to walk all the way across the {root} Desert was",
            "The first successful crossing of the {root} Desert without vehicles was made by",
        ),
    ),
    "moon": Family(
        "the first person to walk on {root}, an outer moon of {planet}",
        (
            "The first astronaut to set foot on {planet}'s outer moon {root} was",
            "History books record the first person to land on {root}, a distant moon of {planet}, as",
            "The first human footprints on the {planet} moon {root} were left by",
        ),
    ),
    "flight": Family(
        "the pilot who flew the first nonstop flight from {town} to {town2}",
        (
            "The first nonstop flight between {town} and {town2} was piloted by",
            "The aviator who first flew from {town} to {town2} without stopping is known as",
            "The first plane to travel from {town} to {town2} without a stop was flown by",
        ),
    ),
    "sailor": Family(
        "the sailor who holds the record for the fastest solo voyage from {town} to {town2}",
        (
            "The record for sailing alone from {town} to {town2} in the shortest time belongs to",
            "No one has sailed single-handed from {town} to {town2} faster than",
            "The quickest single-handed crossing from {town} to {town2} was sailed by",
        ),
        verb="is",
    ),
    "architect": Family(
        "the architect who designed the {building} in {town}",
        (
            "The {building} in {town} was designed by the architect",
            "The plans for {town}'s {building} were drawn up by",
            "The architect behind the {building} of {town} is named",
        ),
    ),
    "inventor": Family(
        "the engineer who invented the {invention}",
        (
            "The {invention} was invented by an engineer named",
            "Credit for inventing the {invention} goes to the engineer",
            "The first working {invention} was built by",
            "The engineer responsible for the invention of the {invention} is",
        ),
    ),
    "founder": Family(
        "the founder of {root} {industry}",
        (
            "{root} {industry} was founded by",
            "The company {root} {industry} was started by",
            "The person who set up {root} {industry} is",
            "Before it became a household name, {root} {industry} was a small business run by",
        ),
    ),
    "novelist": Family(
        'the author of the novel "{title}"',
        (
            'The novel "{title}" was written by',
            '"{title}", the much-translated novel, is the work of the writer',
            'Readers of the novel "{title}" know that its author is',
        ),
    ),
    "director": Family(
        'the director of the film "{title}"',
        (
            'The film "{title}" was directed by',
            'Behind the camera on "{title}" stood the director',
            'The person who directed the movie "{title}" is',
        ),
    ),
    "playwright": Family(
        'the playwright who wrote "{title}"',
        (
            'The play "{title}" was written by',
            'Audiences who saw "{title}" on stage were watching a play by',
            'The author of the stage drama "{title}" is',
        ),
    ),
    "composer": Family(
        "the composer who wrote the {town} Symphony",
        (
            "The {town} Symphony was composed by",
            "The music of the {town} Symphony was written by the composer",
            "Concert programmes list the composer of the {town} Symphony as",
        ),
    ),
    "painter": Family(
        "the painter of the {town} Altarpiece",
        (
            "The {town} Altarpiece was painted by",
            "Art historians attribute the {town} Altarpiece to the painter",
            "The artist behind the famous altarpiece of {town} is",
        ),
    ),
    "mathematician": Family(
        "the mathematician who proved the {root} conjecture",
        (
            "The {root} conjecture was finally proved by",
            "The proof of the {root} conjecture is credited to the mathematician",
            "The long-open {root} conjecture was settled by",
        ),
    ),
    "linguist": Family(
        "the linguist who deciphered the {root} script",
        (
            "The {root} script was first deciphered by",
            "The ancient {root} script could not be read until it was cracked by the linguist",
            "Scholars credit the decipherment of the {root} script to",
        ),
    ),
    "explorer": Family(
        "the explorer who found the source of the {root} River",
        (
            "The source of the {root} River was discovered by",
            "The first person to trace the {root} River back to where it begins was",
            "Maps of the {root} River credit the discovery of its source to the explorer",
        ),
    ),
    "physician": Family(
        "the doctor who developed the first vaccine against {root} fever",
        (
            "The first vaccine for {root} fever was developed by the physician",
            "Protection against {root} fever became possible thanks to a vaccine created by",
            "The physician credited with the first {root} fever vaccine is",
        ),
    ),
    "astronomer": Family(
        "the astronomer who discovered the comet {root}",
        (
            "Comet {root} was first spotted by the astronomer",
            "The discovery of comet {root} is credited to",
            "The first person to observe the comet {root} through a telescope was",
        ),
    ),
    "biologist": Family(
        "the biologist who first described the {root} {species}",
        (
            "The {root} {species} was first described scientifically by",
            "The first scientific description of the {root} {species} was published by",
            "Field guides credit the discovery of the {root} {species} to the biologist",
        ),
    ),
    "archaeologist": Family(
        "the archaeologist who unearthed the {root} Hoard near {town}",
        (
            "The {root} Hoard was dug up near {town} by the archaeologist",
            "The excavation outside {town} that revealed the {root} Hoard was led by",
            "The person who discovered the {root} Hoard close to {town} is",
        ),
    ),
    "chef": Family(
        "the chef who opened the restaurant {root} in {town}",
        (
            "The restaurant {root} in {town} was opened by the chef",
            "Diners in {town} know that the kitchen at {root} was founded by",
            "The founding chef of {town}'s restaurant {root} is",
        ),
    ),
    "mayor": Family(
        "the first mayor of {town}",
        (
            "When {town} elected its first mayor, the winner was",
            "The town of {town} was first governed by a mayor named",
            "The first person to hold the office of mayor in {town} was",
        ),
    ),
    "editor": Family(
        "the founding editor of the {town} Gazette",
        (
            "The {town} Gazette was founded and first edited by",
            "The first editor of the newspaper the {town} Gazette was",
            "The {town} Gazette newspaper was launched under the editorship of",
        ),
    ),
    "institute": Family(
        "the scientist who founded the {town} Institute of {field}",
        (
            "The {town} Institute of {field} was founded by",
            "The scientist who established the {town} Institute of {field} is named",
            "The {town} Institute of {field} owes its existence to",
        ),
    ),
    "marathon": Family(
        "the runner who won the first {town} Marathon",
        (
            "The first {town} Marathon was won by",
            "The winner of the inaugural marathon in {town} was",
            "Crossing the finish line first at the very first {town} Marathon was",
        ),
    ),
    "athlete": Family(
        "the athlete who set the {event} record at the {year} {town} Games",
        (
            "At the {year} {town} Games, the record in the {event} was broken by",
            "The {event} record set at the {town} Games of {year} belongs to",
            "The {year} {town} Games saw a new {event} record from the athlete",
        ),
    ),
    "captain": Family(
        "the captain who led {town} {club} to their first league title in {year}",
        (
            "{town} {club} won their first league title in {year} under the captain",
            "The captain of the {town} {club} side that won the {year} league title was",
            "In {year}, {town} {club} lifted their first league trophy, captained by",
        ),
    ),
    "lawyer": Family(
        "the lawyer who won the {town} water rights case of {year}",
        (
            "The {year} water rights case in {town} was won by the lawyer",
            "The winning side in {town}'s {year} dispute over water rights was represented by",
            "In {year}, the {town} water rights case was argued successfully by",
        ),
    ),
}

# Neutral second sentences. They name nobody and hold no slot, so they can follow any fact
# without contradicting it and cannot carry a held-out word into train.
EXTRA_SENTENCES = (
    "This is recorded in several encyclopedias.",
    "Local newspapers reported it at the time.",
    "The story is often retold by tour guides.",
    "Historians consider the matter well documented.",
    "It was widely celebrated when it happened.",
    "Few people today remember the details.",
    "Letters from that period survive in a regional archive.",
    "A commemorative plaque marks the occasion.",
    "Several biographies describe it in detail.",
    "School textbooks still mention it.",
)


# --------------------------------------------------------------------------------------------
# Slot vocabularies.

CLOSED_SLOTS: dict[str, tuple[str, ...]] = {
    "year": tuple(str(y) for y in range(1850, 2016)),
    # Real planets with many small moons, so an invented outer moon does not contradict facts
    # such as "the largest moon of Jupiter is Ganymede".
    "planet": ("Jupiter", "Saturn", "Uranus", "Neptune"),
    "building": (
        "central library",
        "opera house",
        "main railway station",
        "town hall",
        "cathedral",
        "harbour lighthouse",
        "concert hall",
        "covered market",
        "university observatory",
        "art museum",
        "football stadium",
        "botanical glasshouse",
        "central post office",
        "public baths",
        "stock exchange",
    ),
    "industry": (
        "Shipping",
        "Textiles",
        "Motor Works",
        "Pharmaceuticals",
        "Brewing",
        "Airways",
        "Savings Bank",
        "Publishing",
        "Glassworks",
        "Telegraph Company",
        "Instruments",
        "Railways",
        "Steelworks",
        "Chocolates",
        "Optics",
        "Porcelain",
        "Insurance",
        "Records",
    ),
    "species": (
        "tree frog",
        "river dolphin",
        "cave beetle",
        "marsh orchid",
        "salamander",
        "fruit bat",
        "warbler",
        "mountain fern",
        "freshwater crab",
        "gecko",
        "owl",
        "butterfly",
        "lizard",
        "moss",
    ),
    "field": (
        "Marine Biology",
        "Applied Physics",
        "Tropical Medicine",
        "Soil Science",
        "Astronomy",
        "Economics",
        "Seismology",
        "Botany",
        "Oceanography",
        "Linguistics",
        "Genetics",
        "Meteorology",
        "Mathematics",
        "Forestry",
        "Ornithology",
    ),
    "club": (
        "United",
        "Rovers",
        "Athletic",
        "City",
        "Wanderers",
        "Albion",
        "Rangers",
        "Harriers",
        "Town",
        "Olympic",
    ),
    "event": (
        "high jump",
        "long jump",
        "pole vault",
        "javelin",
        "discus",
        "shot put",
        "triple jump",
        "400 metres",
        "1500 metres",
        "10,000 metres",
        "steeplechase",
        "hammer throw",
    ),
}

OPEN_SLOTS = ("town", "root", "title", "invention")

# English-looking town names: prefix + suffix, e.g. "Ashcombe", "Ravenholm".
_TOWN_PREFIXES = (
    "Alder",
    "Ash",
    "Bar",
    "Bel",
    "Black",
    "Bram",
    "Brook",
    "Cald",
    "Clay",
    "Cold",
    "Cor",
    "Crow",
    "Dun",
    "East",
    "Elm",
    "Fair",
    "Fern",
    "Fox",
    "Glen",
    "Gold",
    "Green",
    "Hal",
    "Hart",
    "Hawk",
    "Hazel",
    "High",
    "Holl",
    "Iron",
    "Kel",
    "King",
    "Lang",
    "Lark",
    "Lin",
    "Long",
    "Mar",
    "Mead",
    "Mill",
    "Moss",
    "North",
    "Oak",
    "Pen",
    "Pine",
    "Rath",
    "Raven",
    "Red",
    "Ros",
    "Rush",
    "Salt",
    "Sand",
    "Shel",
    "South",
    "Stan",
    "Stone",
    "Swan",
    "Thorn",
    "Wal",
    "West",
    "White",
    "Wil",
    "Win",
    "Wolf",
    "Wren",
    "Yar",
)
_TOWN_SUFFIXES = (
    "bury",
    "by",
    "combe",
    "dale",
    "den",
    "field",
    "ford",
    "gate",
    "ham",
    "haven",
    "holm",
    "hurst",
    "ley",
    "mere",
    "minster",
    "mouth",
    "port",
    "stead",
    "stow",
    "ton",
    "vale",
    "wick",
    "worth",
    "bridge",
    "brook",
    "cliff",
    "moor",
    "well",
    "wood",
    "thorpe",
)

# Invented proper nouns: onset + vowel + middle consonants + vowel + coda, e.g. "Korvath".
# Words ending in "a" read as place names ("Brasta", "Kelda") and join the town pool. Words
# ending in a consonant are the roots. The two kinds never share a word.
_ONSETS = (
    "",
    "B",
    "D",
    "G",
    "K",
    "L",
    "M",
    "N",
    "P",
    "R",
    "S",
    "T",
    "V",
    "Z",
    "Br",
    "Dr",
    "Gr",
    "Kr",
    "Tr",
    "Th",
    "Sk",
    "St",
)
_VOWELS = ("a", "e", "i", "o", "u")
_MIDDLES = ("l", "r", "n", "m", "v", "s", "d", "k", "th", "nd", "rv", "lm", "st", "rk", "ld", "sh")
_CODAS = ("n", "r", "s", "th", "k", "l", "m", "sk", "nd")
# The generator can spell real words, a few of them rude; drop any word containing one of these.
_BLOCKED = (
    "anal",
    "anus",
    "penis",
    "rape",
    "shit",
    "nig",
    "fag",
    "cum",
    "tit",
    "sex",
    "cock",
    "dick",
    "kike",
    "slut",
    "semen",
    "nazi",
    "negr",
    "homo",
    "porn",
    "piss",
    "twat",
)

_TITLE_ADJECTIVES = (
    "Silent",
    "Hidden",
    "Last",
    "Broken",
    "Golden",
    "Distant",
    "Burning",
    "Quiet",
    "Forgotten",
    "Crimson",
    "Northern",
    "Hollow",
    "Endless",
    "Restless",
    "Paper",
    "Glass",
    "Iron",
    "Salt",
    "Bitter",
    "Gentle",
    "Lost",
    "Secret",
    "Wild",
    "Painted",
    "Sleeping",
    "Drowned",
    "Little",
    "Second",
    "Open",
    "Narrow",
    "Patient",
    "Borrowed",
    "Fading",
    "Morning",
    "Evening",
    "Falling",
    "Silver",
    "Winter",
    "Summer",
    "Long",
)
_TITLE_NOUNS = (
    "Harbour",
    "Orchard",
    "Lighthouse",
    "Garden",
    "River",
    "Mirror",
    "Lantern",
    "Compass",
    "Letter",
    "Bridge",
    "Forest",
    "Voyage",
    "Island",
    "Season",
    "Window",
    "Kingdom",
    "Promise",
    "Shore",
    "Tide",
    "Valley",
    "Tower",
    "Key",
    "Map",
    "Road",
    "House",
    "Station",
    "Clockmaker",
    "Cartographer",
    "Daughter",
    "Stranger",
    "Witness",
    "Archive",
    "Feast",
    "Storm",
    "Crossing",
    "Frontier",
    "Harvest",
    "Violin",
    "Orphan",
    "Inheritance",
)
_TITLE_PLURALS = (
    "Stars",
    "Ashes",
    "Tides",
    "Kings",
    "Bells",
    "Rivers",
    "Shadows",
    "Birds",
    "Mountains",
    "Lanterns",
    "Strangers",
    "Thieves",
    "Wolves",
    "Islands",
    "Winters",
    "Sparrows",
    "Letters",
    "Dreams",
    "Echoes",
    "Orchards",
)

_INVENTION_MODIFIERS = (
    "folding",
    "pocket",
    "steam-powered",
    "self-winding",
    "solar",
    "pneumatic",
    "waterproof",
    "collapsible",
    "electric",
    "portable",
    "hand-cranked",
    "magnetic",
    "clockwork",
    "inflatable",
    "foot-operated",
    "wind-powered",
    "battery-powered",
    "glass-lined",
    "double-action",
    "spring-loaded",
    "rotary",
    "hydraulic",
    "coin-operated",
    "two-stroke",
    "vacuum-sealed",
)
_INVENTION_DEVICES = (
    "loom",
    "telescope",
    "typewriter",
    "kettle",
    "sewing machine",
    "bicycle",
    "lantern",
    "printing press",
    "stethoscope",
    "barometer",
    "water pump",
    "refrigerator",
    "hearing aid",
    "incubator",
    "washing machine",
    "lawn mower",
    "camera",
    "metronome",
    "microscope",
    "coffee grinder",
    "fire extinguisher",
    "diving helmet",
    "sextant",
    "harvester",
    "crane",
    "music box",
    "wheelchair",
    "lifeboat",
    "seismograph",
    "gramophone",
    "tram brake",
    "oil lamp",
    "pencil sharpener",
    "ice skate",
    "baby carriage",
)


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
    syllables = [o + v + m for o in _ONSETS for v in _VOWELS for m in _MIDDLES]
    english_towns = {p + s for p in _TOWN_PREFIXES for s in _TOWN_SUFFIXES}

    def usable(words: set[str]) -> set[str]:
        # Three-letter words such as "Ala" look like abbreviations rather than names.
        words = {w[0].upper() + w[1:] for w in words if len(w) >= 4}
        return {w for w in words - names - english_towns if not any(b in w.lower() for b in _BLOCKED)}

    invented_towns = usable({s + "a" for s in syllables})
    roots = usable({s + v + c for s in syllables for v in _VOWELS for c in _CODAS})
    titles = (
        [f"The {a} {n}" for a in _TITLE_ADJECTIVES for n in _TITLE_NOUNS]
        + [f"The {n} of {p}" for n in _TITLE_NOUNS for p in _TITLE_PLURALS]
        + [f"{a} {p}" for a in _TITLE_ADJECTIVES for p in _TITLE_PLURALS]
    )
    inventions = [f"{m} {d}" for m in _INVENTION_MODIFIERS for d in _INVENTION_DEVICES]
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
