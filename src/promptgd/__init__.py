"""promptgd: meta-train causal LMs so that one gradient step on a text acts like putting it in the prompt."""

from promptgd.absorb import absorb, ask
from promptgd.data.triples import Triple
from promptgd.models.loading import load_model

__all__ = ["Triple", "load_model", "absorb", "ask"]
