"""`python -m promptgd`: the CLI as a module, which `torchrun -m promptgd ...` needs."""

from promptgd.cli import main

main()
