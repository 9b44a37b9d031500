"""How a triple becomes tokens in each mode. Segments are tokenized separately and concatenated, so the
query and response tokens are identical in NC, Prompt and FT and only what precedes them differs."""

from __future__ import annotations

from dataclasses import dataclass

from promptgd.config import FormatConfig
from promptgd.data.triples import Triple
from promptgd.errors import UserError


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
        """Prompt-mode prefix: context ⊕ separator ⊕ query (the triple's own separator where it has one)."""
        separator = self.format.separator if triple.separator is None else triple.separator
        return self._ids(triple.context + separator, first=True) + self._ids(triple.query, first=False)

    def response(self, triple: Triple) -> list[int]:
        """Scored in every mode; never includes the answer terminator."""
        return self._ids(triple.response, first=False)

    def answer_end(self) -> list[int]:
        """Tokens that close a trained answer (a newline by default), so decoding learns to stop."""
        return self._ids(self.format.answer_end, first=False)

    def text(self, text: str) -> list[int]:
        return self._ids(text, first=True)


class TooLongError(UserError, ValueError):
    """A triple longer than the model's positions; the message names the triple and both lengths."""


def check_fits(encoder: Encoder, triples: list[Triple], max_positions: int, max_new_tokens: int, what: str) -> None:
    """Refuse, before any work, triples whose longest row (Prompt: context ⊕ separator ⊕ query ⊕ response, or the
    decoding budget after the prompt if longer) needs more positions than the model has: past them a model runs
    silently on positions it never learnt, and a very long context can exhaust memory."""
    for i, triple in enumerate(triples):
        prompt = len(encoder.prompt(triple))
        need = prompt + max(len(encoder.response(triple)) + len(encoder.answer_end()), max_new_tokens)
        if need > max_positions:
            raise TooLongError(
                f"{what}, triple {i} (context {triple.context[:40]!r}...): needs {need} positions, the model has "
                f"{max_positions}; shorten it or drop it"
            )


def max_positions(model) -> int | None:
    """The longest sequence `model` was built for (None when its config does not say)."""
    config = model.config
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
