"""The `promptgd` console script and `python -m promptgd` (which `torchrun -m promptgd ...` needs): the same command
line again under tcmalloc when the machine has it (malloc.py says why), then the CLI."""

import os
import sys

from promptgd.errors import UserError
from promptgd.malloc import preload_environment


def main() -> None:
    try:
        env = preload_environment(os.environ, sys.platform)
    except UserError as e:
        print(f"promptgd: error: {e}", file=sys.stderr)
        sys.exit(2)
    if env is not None:
        # sys.orig_argv is the command line as typed (interpreter flags, `-m promptgd` or the script's path).
        os.execve(sys.executable, sys.orig_argv, env)
    from promptgd.cli import main as cli_main  # after the re-execution: torch and the model code load only once

    cli_main()


if __name__ == "__main__":
    main()
