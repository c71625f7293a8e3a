"""`python -m nico …`: the `nico` command (how `nico serve` starts its child processes)."""

from nico.cli.main import main

main()
