"""Importing this module registers every built-in task with the registry in `triples.py`."""

from promptgd.data import people, squad, wikitext  # noqa: F401
