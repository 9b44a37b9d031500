"""Generic text for the λ·L_LM(θ) term that keeps the meta-trained model a good language model."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from promptgd.data.acquire import acquire_wikitext
from promptgd.data.wikitext import articles
from promptgd.lm import TokenBatch


def read_corpus(source: str, split: str = "train") -> str:
    """`builtin` (a few KB shipped with the package, for tests), `wikitext:<dir>` (the tokenized WikiText
    release, cleaned of its ` @-@ `-style artefacts; a bare `wikitext:` looks in $PROMPTGD_DATA, then the
    hub) or a path to a UTF-8 text file. `split` picks WikiText's: `train` (valid where the release has no train
    split, as offline WikiText-2) or `test`, which no λ corpus reads."""
    if source == "builtin":
        return resources.files("promptgd.data").joinpath("builtin/generic.txt").read_text(encoding="utf-8")
    if source.startswith("wikitext:"):
        raw = acquire_wikitext(source.removeprefix("wikitext:") or None)
        text = raw.splits["test"] if split == "test" else raw.splits["train"] or raw.splits["valid"]
        return "\n".join(paragraph for article in articles(text) for paragraph in article)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"train.lm_corpus: {source!r} is neither `builtin`, `wikitext:<dir>` nor a file")
    return path.read_text(encoding="utf-8")


def without_held_out(text: str, held_out: list[str]) -> str:
    """`text` without the lines (paragraphs) that contain one of the `held_out` texts, compared with whitespace
    collapsed (a WikiText triple's context is a paragraph's first words, re-joined by single spaces)."""
    if not held_out:
        return text
    wanted = [" ".join(h.split()) for h in held_out if h.strip()]
    return "\n".join(line for line in text.split("\n") if not any(h in " ".join(line.split()) for h in wanted))


class LMCorpus:
    """The corpus cut into fixed-length token chunks; chunk choice is a pure function of (seed, step), so a
    resumed run draws exactly the chunks the uninterrupted run would have drawn. Paragraphs that contain a
    `held_out` text (the validation contexts) are left out."""

    def __init__(self, tokenizer, source: str, seq_len: int, seed: int, held_out: list[str] = ()):
        ids = tokenizer(without_held_out(read_corpus(source), list(held_out)), add_special_tokens=False)["input_ids"]
        self.chunks = [ids[i : i + seq_len] for i in range(0, len(ids) - seq_len + 1, seq_len)]
        if not self.chunks:
            raise ValueError(f"train.lm_corpus {source!r} has fewer than lm_seq_len={seq_len} tokens")
        self.pad_id = tokenizer.pad_token_id
        self.seed = seed

    def batch(self, step: int, device) -> TokenBatch:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        index = int(torch.randint(len(self.chunks), (1,), generator=generator))
        return TokenBatch.from_lists([self.chunks[index]], self.pad_id, device=device)
