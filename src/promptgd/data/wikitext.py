"""The `wikitext` task: continue a Wikipedia passage after the word "the".

Text. The release's files are split into articles at top-level headings (" = Title = ") and into
paragraphs at line breaks; every heading line (" = Title = ", " = = Section = = ", ...) and blank
line is dropped. Each paragraph is cleaned of the tokenized release's artefacts:
- " @-@ " -> "-", " @,@ " -> ",", " @.@ " -> "." (e.g. "0 @.@ 7" -> "0.7");
- no space before , . ; : ! ? ) ] % ... nor before the split-off clitics 's 't n't 'm 've 're 'll 'd
  (so "Stevenson 's" -> "Stevenson's", "didn 't" -> "didn't");
- no space after ( [ $ £ (so "( 24 in )" -> "(24 in)");
- double quotes are paired within a paragraph ('" x "' -> '"x"') when the paragraph has an even number of
  them; otherwise they are left spaced. Lone single quotes are left alone (possessive or quote: ambiguous);
- `<unk>` is kept in contexts (the release replaced rare words by it) but see the response rule below.
Words are then the cleaned paragraph split on whitespace.

Triples (`WikiTextRule`). Let w be a paragraph's words and i an index with w[i] == trigger (exact,
case-sensitive: "The" does not count), min_context_words <= i <= max_context_words, i + response_words < len(w),
and no `<unk>` in w[i+1 : i+1+response_words]. The test split takes the smallest such i of each paragraph (one
triple per paragraph); the training split the `train_per_paragraph` smallest, each its own task (the paper cuts its
343,586 training triples from WikiText-103's 103M words; offline we have WikiText-2's 217k-word valid split, and one
triple per paragraph gives 1,404 tasks, fewer than the 2,000-task budget with warm-up and validation apart). A
paragraph's triples share its `source` (the split and the paragraph's number), which keeps them on one side of the
warm-up / meta-training / validation cuts (data/partition.py): a later triple's context holds an earlier one's
response. For each triple
- context  = " ".join(w[:i])  -- the paragraph's prefix, ending right before " the";
- query    = w[i], i.e. "the", without a leading space (the prompt puts the separator between context and query);
- response = " " + " ".join(w[i+1 : i+1+response_words]) without a trailing , ; or : (a clause break is
             not part of the phrase), e.g. " respected London doctor Henry Jekyll" from "... Henry Jekyll, who".
Paragraphs without such an i are dropped and counted by reason:
- "too_short": fewer than min_context_words + 1 + response_words words;
- "no_trigger": no trigger in the window with room for the response after it;
- "unk_in_response": every candidate's response holds `<unk>`.

Splits: train from the release's train split when the source has one (the hub configs do), else from
valid (offline we only have WikiText-2's valid and test); test always from test. The manifest says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptgd.data import acquire
from promptgd.data.triples import Splits, Triple

TASK = "wikitext"
# Bump whenever the processing below changes what a given rule produces: it invalidates the cache.
RULE_VERSION = 2
UNK = "<unk>"


@dataclass(frozen=True)
class WikiTextRule:
    trigger: str = "the"  # the query: the context ends right before it
    min_context_words: int = 16  # the context has at least this many words
    max_context_words: int = 128  # and at most this many: a paragraph with no usable trigger by then is dropped
    response_words: int = 5  # words in the response, after the trigger
    train_per_paragraph: int = 3  # training triples cut from one paragraph at most (its first usable triggers); test: 1

    def __post_init__(self):
        if not self.trigger or len(self.trigger.split()) != 1:
            raise ValueError(f"WikiTextRule.trigger must be one word, got {self.trigger!r}")
        if not 0 <= self.min_context_words <= self.max_context_words:
            raise ValueError(f"WikiTextRule: need 0 <= min_context_words <= max_context_words, got {self}")
        if self.response_words < 1:
            raise ValueError(f"WikiTextRule.response_words must be >= 1, got {self.response_words}")
        if self.train_per_paragraph < 1:
            raise ValueError(f"WikiTextRule.train_per_paragraph must be >= 1, got {self.train_per_paragraph}")


DEFAULT_RULE = WikiTextRule()

# The release writes in-number and in-word punctuation as " @x@ "; the joined form has no spaces.
_JOINERS = {"@-@": "-", "@,@": ",", "@.@": "."}
_NO_SPACE_BEFORE = {
    ",",
    ".",
    ";",
    ":",
    "!",
    "?",
    ")",
    "]",
    "%",
    "...",
    "'s",
    "'t",
    "n't",
    "'m",
    "'ve",
    "'re",
    "'ll",
    "'d",
}
_NO_SPACE_AFTER = {"(", "[", "$", "£"}


def is_heading(line: str) -> bool:
    s = line.strip()
    return s.startswith("= ") and s.endswith(" =")


def clean(line: str) -> str:
    """One line of the tokenized release as ordinary text (see the module docstring for the rules)."""
    tokens = line.split()
    pair_quotes = tokens.count('"') % 2 == 0
    inside_quote = False
    pieces: list[str] = []
    glue = False  # the previous token forbids a space after it
    for token in tokens:
        text = token
        if token in _JOINERS:
            text, space, glue_after = _JOINERS[token], False, True
        elif token == '"' and pair_quotes:
            space, glue_after = not inside_quote, not inside_quote
            inside_quote = not inside_quote
        else:
            space, glue_after = token not in _NO_SPACE_BEFORE, token in _NO_SPACE_AFTER
        if pieces and space and not glue:
            pieces.append(" ")
        pieces.append(text)
        glue = glue_after
    return "".join(pieces)


def articles(text: str) -> list[list[str]]:
    """The release's text as articles, each a list of cleaned paragraphs; headings and blank lines dropped."""
    result: list[list[str]] = []
    for line in text.split("\n"):
        if is_heading(line):
            if not line.strip().startswith("= ="):  # a top-level heading starts an article
                result.append([])
            continue
        if not line.strip():
            continue
        if not result:  # text before any heading still forms an article
            result.append([])
        result[-1].append(clean(line))
    return result


def paragraph_triples(
    paragraph: str, rule: WikiTextRule = DEFAULT_RULE, limit: int = 1, source: str = ""
) -> tuple[list[Triple], str | None]:
    """The paragraph's first `limit` triples (each with `source`) and None, or [] and the reason it has none."""
    words = paragraph.split()
    k = rule.response_words
    if len(words) < rule.min_context_words + 1 + k:
        return [], "too_short"
    triples: list[Triple] = []
    saw_unk = False
    for i in range(rule.min_context_words, min(rule.max_context_words, len(words) - 1 - k) + 1):
        if words[i] != rule.trigger:
            continue
        response = words[i + 1 : i + 1 + k]
        if any(UNK in w for w in response):
            saw_unk = True
            continue
        triples.append(Triple(" ".join(words[:i]), words[i], " " + " ".join(response).rstrip(",;:"), source=source))
        if len(triples) == limit:
            break
    return triples, None if triples else "unk_in_response" if saw_unk else "no_trigger"


def split_triples(
    text: str, rule: WikiTextRule = DEFAULT_RULE, per_paragraph: int = 1, split: str = "test"
) -> tuple[list[Triple], dict[str, Any]]:
    """Triples from one release file, at most `per_paragraph` per paragraph, each with source "<split>:<paragraph
    number>"; and counts {"articles", "paragraphs", "kept", "dropped": {reason: n}} (paragraphs that give none)."""
    arts = articles(text)
    triples: list[Triple] = []
    dropped = {"too_short": 0, "no_trigger": 0, "unk_in_response": 0}
    paragraphs = [paragraph for article in arts for paragraph in article]
    for number, paragraph in enumerate(paragraphs):
        found, reason = paragraph_triples(paragraph, rule, per_paragraph, f"{split}:{number}")
        if reason is not None:
            dropped[reason] += 1
        triples.extend(found)
    return triples, {"articles": len(arts), "paragraphs": len(paragraphs), "kept": len(triples), "dropped": dropped}


def process(raw: acquire.RawData, rule: WikiTextRule) -> tuple[dict[str, list[Triple]], dict[str, Any]]:
    train_split = "train" if raw.splits.get("train") else "valid"
    train, train_counts = split_triples(raw.splits[train_split], rule, rule.train_per_paragraph, train_split)
    test, test_counts = split_triples(raw.splits["test"], rule, 1, "test")
    return {"train": train, "test": test}, {
        "train": {"from": train_split, **train_counts},
        "test": {"from": "test", **test_counts},
    }


def prepare(path: str | Path | None = None, rule: WikiTextRule = DEFAULT_RULE) -> dict[str, Any]:
    """Acquire WikiText (from `path` if given) and cache its triples under `rule`; return the manifest."""
    # RULE_VERSION is read at call time so that bumping it (or patching it in tests) invalidates the cache.
    return acquire.ensure_processed(TASK, RULE_VERSION, rule, acquire.acquire_wikitext, process, path)


def build_wikitext(n_train: int, n_test: int, seed: int) -> Splits:
    prepare()
    splits = acquire.read_processed(TASK)
    return Splits(
        train=acquire.seeded_sample(splits["train"], n_train, seed, f"{TASK} train"),
        test=acquire.seeded_sample(splits["test"], n_test, seed, f"{TASK} test", "task.n_test"),
    )
