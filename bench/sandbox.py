"""Sandbox benchmark: the worker CPU a workflow run spends in Temporal's sandbox before its
first line runs (importing its workflow module afresh, applying `@workflow.defn`).

    .venv/bin/python bench/sandbox.py [--runs 5] [--instances 100] [--baseline DIR]

Every workflow run, and every replay of a run evicted from the worker's cache, gets a new
sandbox: the workflow's module and the workflow code it imports are executed again (from
source where no bytecode cache exists, as on a machine with PYTHONDONTWRITEBYTECODE=1);
modules passed through (`nico.engine.worker.PURE_WORKFLOW_MODULES`, the standard library,
temporalio) are shared. A run here creates `--instances` sandboxed instances of each
workflow type with the worker's own runner (`SandboxedWorkflowRunner.prepare_workflow`,
what the worker does per run) in a fresh process and takes the CPU time (user + system)
per instance; the table shows the median over `--runs` runs. With `--baseline DIR`
another checkout's `.venv` runs the same measurement, its runs alternating with this
checkout's so machine load hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


async def measure(instances: int) -> dict[str, float]:
    """CPU ms per sandboxed instance, by workflow type (run in the measured interpreter)."""
    import temporalio.workflow

    from nico.engine.worker import WORKFLOWS, workflow_runner

    runner = workflow_runner()
    out: dict[str, float] = {}
    for cls in WORKFLOWS:
        defn = temporalio.workflow._Definition.must_from_class(cls)
        runner.prepare_workflow(defn)  # warm: the passed-through modules load once
        start = time.process_time()
        for _ in range(instances):
            runner.prepare_workflow(defn)
        out[defn.name or cls.__name__] = 1000 * (time.process_time() - start) / instances
    return out


def run_once(python: Path, instances: int) -> dict[str, float]:
    done = subprocess.run(
        [str(python), __file__, "--measure", "--instances", str(instances)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per checkout")
    parser.add_argument("--instances", type=int, default=100, help="instances per run and type")
    parser.add_argument(
        "--baseline", type=Path, help="another checkout (its .venv), runs alternating"
    )
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.instances))))
        return
    codes = [("this", Path(sys.executable))]
    if args.baseline is not None:
        codes.insert(0, ("baseline", args.baseline.resolve() / ".venv/bin/python"))
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.runs):
        for label, python in codes:
            for name, ms in run_once(python, args.instances).items():
                samples.setdefault((label, name), []).append(ms)
    names = sorted({name for _, name in samples}, key=lambda n: (n != "TaskWorkflow", n))
    print(f"{'code':<9}{'workflow':<14}{'CPU ms a run':>13}{'vs baseline':>13}")
    print("-" * 49)
    for name in names:
        base = samples.get(("baseline", name))
        for label, _ in codes:
            ms = statistics.median(samples[(label, name)])
            ratio = f"{ms / statistics.median(base):.2f}x" if base and label == "this" else ""
            print(f"{label:<9}{name:<14}{ms:>13.2f}{ratio:>13}")


if __name__ == "__main__":
    main()
