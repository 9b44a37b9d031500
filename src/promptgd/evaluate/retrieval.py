"""The retrieval baselines a user weighs against storing documents in weights, over the same documents a stream
absorbs (evaluate/stream.py `stream_documents`): `prompt_bm25` puts in the prompt the document that BM25 (rank-bm25's
Okapi BM25) ranks first for the question, `prompt_all` every document (only for streams short enough to fit)."""

from __future__ import annotations

import re
from dataclasses import replace

from rank_bm25 import BM25Okapi

from promptgd.data.triples import Triple


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def with_retrieved(triples: list[Triple], documents: list[str]) -> tuple[list[Triple], list[bool]]:
    """Each triple with its context replaced by the document BM25 ranks first for its query, and whether that is
    the triple's own document (ties go to the earlier document)."""
    index = BM25Okapi([words(d) for d in documents])
    retrieved, own = [], []
    for triple in triples:
        scores = index.get_scores(words(triple.query))
        best = documents[max(range(len(documents)), key=lambda j: (scores[j], -j))]
        retrieved.append(replace(triple, context=best))
        own.append(best == triple.context)
    return retrieved, own


def with_all(triples: list[Triple], documents: list[str]) -> list[Triple]:
    """Each triple with every document, in stream order, as its context."""
    everything = "\n\n".join(documents)
    return [replace(triple, context=everything) for triple in triples]
