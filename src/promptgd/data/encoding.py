"""How a triple becomes tokens in each mode. Segments are tokenized separately and concatenated, so the
query and response tokens are identical in NC, Prompt and FT and only what precedes them differs."""

from __future__ import annotations

from dataclasses import dataclass

from promptgd.config import FormatConfig
from promptgd.data.triples import Triple


@dataclass(frozen=True)
class Encoder:
    tokenizer: object
    format: FormatConfig

    def _ids(self, text: str, first: bool) -> list[int]:
        # Only a sequence's first segment gets the tokenizer's specials (Llama 3's BOS; none for SmolLM2).
        return self.tokenizer(text, add_special_tokens=first)["input_ids"]

    def context(self, triple: Triple) -> list[int]:
        """What the inner update trains on."""
        return self._ids(triple.context, first=True)

    def query(self, triple: Triple) -> list[int]:
        """NC and FT prefix."""
        return self._ids(triple.query, first=True)

    def prompt(self, triple: Triple) -> list[int]:
        """Prompt-mode prefix: context ⊕ separator ⊕ query."""
        return self._ids(triple.context + self.format.separator, first=True) + self._ids(triple.query, first=False)

    def response(self, triple: Triple) -> list[int]:
        """Scored in every mode; never includes the answer terminator."""
        return self._ids(triple.response, first=False)

    def answer_end(self) -> list[int]:
        """Tokens that close a trained answer (a newline by default), so decoding learns to stop."""
        return self._ids(self.format.answer_end, first=False)

    def text(self, text: str) -> list[int]:
        return self._ids(text, first=True)
