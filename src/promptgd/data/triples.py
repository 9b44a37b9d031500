"""The unit of every task: a (context, query, response) triple, its JSONL form and the task registry."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from promptgd.errors import UserError

FIELDS = ("context", "query", "response")


@dataclass(frozen=True)
class Triple:
    context: str  # the text the inner step absorbs (or that Prompt mode puts before the query)
    query: str  # asked after the context (Prompt) or alone (NC, FT)
    response: str  # the gold answer, with its leading space, e.g. " Evan Armstrong"
    answers: tuple[str, ...] = ()  # every acceptable answer for EM/F1 (SQuAD); empty means (response,)
    source: str = ""  # the passage it was cut from, when several triples share one without sharing a context (WikiText); triples of one source stay on one side of every split; empty: the context is the source
    # Between context and query in Prompt mode, when a task of a mixture (config.MixedTask) has its own; None: the
    # run's format.separator.
    separator: str | None = None

    @property
    def group(self) -> str:
        """What must not straddle a split: the source passage, else the context."""
        return self.source or self.context

    @property
    def gold_answers(self) -> tuple[str, ...]:
        return self.answers or (self.response,)


@dataclass(frozen=True)
class Splits:
    train: list[Triple]
    test: list[Triple]
    ood: list[Triple] = field(
        default_factory=list
    )  # a second test set worded unlike any training triple (people tasks)


class TripleFileError(UserError, ValueError):
    """A JSONL triple file that cannot be read; the message names the file and line."""


def write_jsonl(triples: Iterable[Triple], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for t in triples:
            row = asdict(t)
            if not row["answers"]:
                del row["answers"]
            else:
                row["answers"] = list(row["answers"])
            if not row["source"]:
                del row["source"]
            if row["separator"] is None:
                del row["separator"]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[Triple]:
    """Read triples; any malformed line raises TripleFileError naming the file, line and problem."""
    path = Path(path)
    if not path.is_file():
        raise TripleFileError(f"{path}: no such file")
    triples = []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TripleFileError(f"{where}: not UTF-8 (byte {e.start} of the line)") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise TripleFileError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise TripleFileError(f"{where}: expected a JSON object, got {type(row).__name__}")
            for key in FIELDS:
                if key not in row:
                    raise TripleFileError(f"{where}: missing field {key!r}")
                if not isinstance(row[key], str):
                    raise TripleFileError(f"{where}: field {key!r} must be a string, got {type(row[key]).__name__}")
            unknown = set(row) - set(FIELDS) - {"answers", "source", "separator"}
            if unknown:
                raise TripleFileError(f"{where}: unknown field(s) {sorted(unknown)}")
            answers = row.get("answers", [])
            if not (isinstance(answers, list) and all(isinstance(a, str) for a in answers)):
                raise TripleFileError(f"{where}: field 'answers' must be a list of strings")
            source = row.get("source", "")
            if not isinstance(source, str):
                raise TripleFileError(f"{where}: field 'source' must be a string, got {type(source).__name__}")
            separator = row.get("separator")
            if separator is not None and not isinstance(separator, str):
                raise TripleFileError(f"{where}: field 'separator' must be a string, got {type(separator).__name__}")
            for key in FIELDS:  # an empty context has nothing to absorb; an empty query or response, nothing to ask
                if not row[key].strip():
                    raise TripleFileError(f"{where}: field {key!r} is empty")
            triples.append(Triple(row["context"], row["query"], row["response"], tuple(answers), source, separator))
    if not triples:
        raise TripleFileError(f"{path}: holds no triples")
    return triples
