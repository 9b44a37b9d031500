"""Short-answer metrics with the semantics of the official SQuAD v1.1 evaluation script.

An answer is normalized by lowercasing, removing punctuation (`string.punctuation`), removing the
articles a/an/the as whole words, and collapsing whitespace, in that order. Each metric takes the
best score over the gold answers, as the official script does.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    text = s.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _golds(golds: str | Sequence[str]) -> list[str]:
    # A bare string would otherwise be iterated character by character.
    golds = [golds] if isinstance(golds, str) else list(golds)
    if not golds:
        raise ValueError("no gold answers given")
    return golds


def exact_match(prediction: str, golds: str | Sequence[str]) -> bool:
    pred = normalize_answer(prediction)
    return any(pred == normalize_answer(g) for g in _golds(golds))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: str | Sequence[str]) -> float:
    pred = normalize_answer(prediction).split()
    return max(_f1(pred, normalize_answer(g).split()) for g in _golds(golds))


def prefix_match(prediction: str, golds: str | Sequence[str]) -> bool:
    """Whether the normalized prediction's words start with a normalized gold's words.

    For free generation that runs on past the answer ("Denver Broncos won the game"). A gold that
    normalizes to nothing (e.g. "the") matches only a prediction that does too, as in exact match.
    """
    pred = normalize_answer(prediction).split()
    for g in _golds(golds):
        gold = normalize_answer(g).split()
        if pred[: len(gold)] == gold and (gold or not pred):
            return True
    return False
