"""promptgd: meta-train causal LMs so that one gradient step on a text acts like putting it in the prompt."""

from importlib import import_module

# The user API, imported on first use: the `promptgd` command first imports promptgd.malloc and may re-execute
# itself under tcmalloc (malloc.py), and loading torch and transformers before that would cost seconds twice.
_API = {
    "Triple": "promptgd.data.triples",
    "load_model": "promptgd.models.loading",
    "absorb": "promptgd.api",
    "ask": "promptgd.api",
    "absorb_each": "promptgd.api",
}
__all__ = list(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'promptgd' has no attribute {name!r}")
    value = getattr(import_module(_API[name]), name)
    # Bound here, as the eager import it replaces did. (The functions live in promptgd.api, not in a module named
    # like them: importing such a module binds it to the package attribute the function is looked up by.)
    globals()[name] = value
    return value
