"""CLI startup benchmark: how long `nico --help` and a client command's own `--help` take
to start, against the interpreter alone and against importing the server (what every
command paid before client commands stopped importing it).

    .venv/bin/python bench/cli_startup.py [--runs 9] [--base ../other-checkout]

Each case is a fresh process (`--help` exits before any network call), run interleaved
with the others so machine load hits all alike; the table shows the median wall time and
the median CPU time (user + system of the child, steadier on a loaded machine). With
`--base DIR` the same commands of another checkout (its own `.venv`) run in the same
rounds, e.g. the commit before this change.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def cases(base: Path | None) -> dict[str, list[str]]:
    nico = str(BIN / "nico")
    out = {
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "import the server (nico.cli.serve)": [sys.executable, "-c", "import nico.cli.serve"],
        "nico --help": [nico, "--help"],
        "nico rack power --help": [nico, "rack", "power", "--help"],
        "nico task list --help": [nico, "task", "list", "--help"],
    }
    if base is not None:
        old = str(base / ".venv" / "bin" / "nico")
        out["base: nico --help"] = [old, "--help"]
        out["base: nico rule import --help"] = [old, "rule", "import", "--help"]
    return out


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--base", type=Path, default=None, help="another checkout to compare")
    args = parser.parse_args()
    commands = cases(args.base)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    env_cwd = os.getcwd()
    for _ in range(args.runs):
        for name, command in commands.items():
            wall, cpu = timed(command)
            walls[name].append(wall)
            cpus[name].append(cpu)
    server = statistics.median(walls["import the server (nico.cli.serve)"])
    print(f"CLI startup, median of {args.runs} interleaved runs ({env_cwd})")
    print(f"| {'command':<36} | wall s | cpu s | wall vs server import |")
    print(f"|{'-' * 38}|-------:|------:|----------------------:|")
    for name in commands:
        wall = statistics.median(walls[name])
        cpu = statistics.median(cpus[name])
        print(f"| {name:<36} | {wall:6.3f} | {cpu:5.3f} | {wall / server:20.2f}x |")


if __name__ == "__main__":
    main()
