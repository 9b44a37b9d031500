"""Which memory allocator a `promptgd` process runs on: tcmalloc, preloaded when the machine has it.

Why: every meta-step frees and re-allocates tensors of a parameter's size (weight gradients, the tied embedding's
dense gradient, Adam's temporaries). glibc's malloc serves large blocks with mmap and returns them to the kernel
when freed, so each step pays page faults to get the same memory back; tcmalloc keeps and reuses it
(`benchmarks/allocator.py` measures both; results/benchmarks/benchmarks.md, "The allocator"), with bit-identical
losses. A library can only be preloaded at process start, hence one re-execution of the same command line
(`__main__.py`) before anything heavy is imported.

PROMPTGD_MALLOC=system keeps glibc's allocator. Install tcmalloc with `apt install libtcmalloc-minimal4` (Debian,
Ubuntu); without it, and off Linux, the command runs as it is.
"""

from __future__ import annotations

import ctypes.util
from collections.abc import Mapping
from pathlib import Path

from promptgd.errors import UserError

SWITCH = "PROMPTGD_MALLOC"  # "tcmalloc" (the default: use it when installed) or "system"
ALLOCATORS = ("tcmalloc", "jemalloc")  # an LD_PRELOAD naming one of these is left as it is, and never re-executed


def tcmalloc_library() -> str | None:
    """The tcmalloc shared library's name as the dynamic loader finds it (minimal build first), or None."""
    for name in ("tcmalloc_minimal", "tcmalloc"):
        found = ctypes.util.find_library(name)
        if found:
            return found
    return None


def preload_environment(environ: Mapping[str, str], platform: str) -> dict[str, str] | None:
    """The environment to re-execute this process in with tcmalloc preloaded, or None to run as it is."""
    choice = environ.get(SWITCH, "tcmalloc")
    if choice not in ("tcmalloc", "system"):
        raise UserError(f"environment variable {SWITCH}={choice!r}: expected 'tcmalloc' or 'system'")
    preload = environ.get("LD_PRELOAD", "")
    # The check on LD_PRELOAD is also what stops a second re-execution, whether or not the first preload took.
    if choice == "system" or platform != "linux" or any(name in preload for name in ALLOCATORS):
        return None
    library = tcmalloc_library()
    if library is None:
        return None
    env = dict(environ)
    env["LD_PRELOAD"] = f"{library}:{preload}" if preload else library
    # tcmalloc reports every allocation above 1 GiB on stderr; a vocabulary-sized batch of logits is one.
    env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))
    return env


def allocator() -> str:
    """Which allocator serves this process ("tcmalloc", "jemalloc" or "system"), as recorded beside wall times."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # not Linux: nothing was preloaded
        return "system"
    return next((name for name in ALLOCATORS if f"lib{name}" in maps), "system")
