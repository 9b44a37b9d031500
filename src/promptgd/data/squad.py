"""The `squad` task: SQuAD v1.1 questions as (paragraph, question, answer) triples.

One triple per question:
- context  = the paragraph, stripped of surrounding whitespace;
- query    = `SquadRule.query_template` filled with the stripped question, by default
             "Question: {question}\\nAnswer:" so a short answer follows; it reads the same with or
             without the paragraph before it, so it serves Prompt, NC and FT modes alike;
- response = " " + the first gold answer (stripped);
- answers  = every gold answer, stripped, empty ones removed, deduplicated in order.

Train comes from train-v1.1.json, test from dev-v1.1.json. A training sample draws questions at random;
a test sample draws whole paragraphs (all their questions, ~5 each) so that FT evaluation absorbs each
paragraph once for all its questions. Records are dropped, and counted by
reason, in this order:
- "empty_answer": no gold answer is left once stripped;
- "context_over_words": the paragraph has more than `max_context_words` whitespace-separated words;
- "context_over_chars": the paragraph has more than `max_context_chars` characters.

The paper kept 82,031 of 87,599 train and 10,380 of 10,570 dev questions without saying how. Our
default 200-word budget keeps 81,823 train (93.4%, the paper kept 93.6%) and 9,784 dev (92.6%, the
paper kept 98.2%): no single paragraph budget matches both shares, and this one matches train, the
larger. `promptgd data fetch squad` reports the counts in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptgd.data import acquire
from promptgd.data.triples import Splits, Triple
from promptgd.errors import UserError

TASK = "squad"
# Bump whenever the processing below changes what a given rule produces: it invalidates the cache.
RULE_VERSION = 1


@dataclass(frozen=True)
class SquadRule:
    max_context_words: int | None = 200  # paragraph budget in whitespace-separated words; None: no limit
    max_context_chars: int | None = None  # paragraph budget in characters; None: no limit
    query_template: str = "Question: {question}\nAnswer:"  # must contain {question}

    def __post_init__(self):
        if "{question}" not in self.query_template:
            raise ValueError(f"SquadRule.query_template {self.query_template!r} lacks the {{question}} field")


DEFAULT_RULE = SquadRule()


class SquadFormatError(UserError, ValueError):
    """A SQuAD file that does not follow the official schema; the message names the file and key path."""


def _get(obj: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise SquadFormatError(f"{where}: missing key {key!r}")
    value = obj[key]
    if not isinstance(value, kind):
        raise SquadFormatError(f"{where}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def parse_squad(
    official: dict[str, Any], rule: SquadRule = DEFAULT_RULE, name: str = "SQuAD"
) -> tuple[list[Triple], dict[str, Any]]:
    """Triples from one file in the official schema, and counts {"total", "kept", "dropped": {reason: n}}.

    `name` (the file name) prefixes every error, with the key path of the offending record.
    """
    triples: list[Triple] = []
    dropped = {"empty_answer": 0, "context_over_words": 0, "context_over_chars": 0}
    total = 0
    for a, article in enumerate(_get(official, "data", list, name)):
        for p, paragraph in enumerate(_get(article, "paragraphs", list, f"{name}: data[{a}]")):
            where = f"{name}: data[{a}].paragraphs[{p}]"
            context = _get(paragraph, "context", str, where).strip()
            too_many_words = rule.max_context_words is not None and len(context.split()) > rule.max_context_words
            too_many_chars = rule.max_context_chars is not None and len(context) > rule.max_context_chars
            for q, qa in enumerate(_get(paragraph, "qas", list, where)):
                qa_where = f"{where}.qas[{q}]"
                total += 1
                question = _get(qa, "question", str, qa_where).strip()
                answers: list[str] = []
                for i, answer in enumerate(_get(qa, "answers", list, qa_where)):
                    text = _get(answer, "text", str, f"{qa_where}.answers[{i}]").strip()
                    if text and text not in answers:
                        answers.append(text)
                if not answers:
                    dropped["empty_answer"] += 1
                elif too_many_words:
                    dropped["context_over_words"] += 1
                elif too_many_chars:
                    dropped["context_over_chars"] += 1
                else:
                    query = rule.query_template.format(question=question)
                    triples.append(Triple(context, query, " " + answers[0], tuple(answers)))
    return triples, {"total": total, "kept": len(triples), "dropped": dropped}


def process(raw: acquire.RawData, rule: SquadRule) -> tuple[dict[str, list[Triple]], dict[str, Any]]:
    train, train_counts = parse_squad(raw.splits["train"], rule, acquire.SQUAD_FILES["train"])
    test, test_counts = parse_squad(raw.splits["dev"], rule, acquire.SQUAD_FILES["dev"])
    return {"train": train, "test": test}, {"train": train_counts, "test": test_counts}


def prepare(path: str | Path | None = None, rule: SquadRule = DEFAULT_RULE) -> dict[str, Any]:
    """Acquire SQuAD v1.1 (from `path` if given) and cache its triples under `rule`; return the manifest."""
    # RULE_VERSION is read at call time so that bumping it (or patching it in tests) invalidates the cache.
    return acquire.ensure_processed(TASK, RULE_VERSION, rule, acquire.acquire_squad, process, path)


def build_squad(n_train: int, n_test: int, seed: int) -> Splits:
    prepare()
    splits = acquire.read_processed(TASK)
    return Splits(
        train=acquire.seeded_sample(splits["train"], n_train, seed, f"{TASK} train"),
        test=acquire.seeded_context_sample(splits["test"], n_test, seed, f"{TASK} test"),
    )


# SQuAD dev paragraphs are shared by several studies (the test sample, the confirmation of a committed result, the
# long streams). Each study reads its own half-open range of one seeded paragraph order (that of `build_squad`'s test
# sample, seed 0), so no study reads a paragraph another one already read. "test" holds the 101 paragraphs the
# 500-question test sample touches (its last one cut); the ranges never move once a study has read one.
DEV_ORDER_SEED = 0
DEV_RANGES: dict[str, tuple[int, int | None]] = {
    "test": (0, 101),
    "confirm": (101, 201),
    "stream": (201, None),
}


def dev_paragraphs(range_name: str) -> list[list[Triple]]:
    """The dev paragraphs of the named range of `DEV_RANGES`, in the seeded order, each as all its triples."""
    if range_name not in DEV_RANGES:
        raise UserError(f"SQuAD dev range {range_name!r}: unknown; known: {', '.join(DEV_RANGES)}")
    prepare()
    by_context: dict[str, list[Triple]] = {}
    for triple in acquire.read_processed(TASK)["test"]:
        by_context.setdefault(triple.context, []).append(triple)
    order = list(by_context)
    acquire.shuffle_contexts(order, DEV_ORDER_SEED, f"{TASK} test")
    start, stop = DEV_RANGES[range_name]
    return [by_context[context] for context in order[start:stop]]


def validation_stream_paragraphs(n: int, n_train: int = 5000, seed: int = 0) -> list[list[Triple]]:
    """`n` whole training paragraphs (all their questions) for choosing stream settings on validation: in a seeded
    order, none that any triple of the presets' training sample (`n_train` questions, `seed`) comes from, so no
    warm-up, meta-training or validation triple shares a paragraph with them. Whole paragraphs, where the
    validation split holds about one question of each."""
    if n_train <= 0:  # a sample of every triple leaves no paragraph outside it
        raise ValueError("validation_stream_paragraphs: n_train must be a positive sample size")
    prepare()
    train = acquire.read_processed(TASK)["train"]
    sampled = {t.context for t in acquire.seeded_sample(train, n_train, seed, f"{TASK} train")}
    by_context: dict[str, list[Triple]] = {}
    for triple in train:
        if triple.context not in sampled:
            by_context.setdefault(triple.context, []).append(triple)
    order = list(by_context)
    acquire.shuffle_contexts(order, seed, f"{TASK} validation stream")
    return [by_context[context] for context in order[:n]]
