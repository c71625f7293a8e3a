"""Single-resource GETs benchmark: `GET /tray/{id}` and `GET /task/{id}`.

    .venv/bin/python bench/gets.py [--db postgres] [--tasks 200] [--runs 3]
                                   [--duration 6] [--api-workers 2] [--baseline DIR]

bench/reads.py's `nico serve` over its seeded history (`--tasks` finished tasks), one
per checkout (`--baseline DIR` beside this one, both running), and `wrk` from its own
process: 50 connections for `--duration` seconds (req/s, p50, p99, and the CPU the
`nico serve` process tree spent per request, which load from elsewhere on the host sways
less than req/s), then 1 connection for 3 seconds (p50 c1). `--runs` rounds, each
measuring one GET on every checkout back to back; each cell is the median of its runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from reads import (
    BASE,
    Load,
    Server,
    Target,
    ensure_wrk,
    median_load,
    postgres_reachable,
    run_wrk,
    serving,
)
from served import cpu_seconds, process_tree

GETS = ("tray", "task")


@dataclass
class Sample:
    c50: Load
    c1: Load
    cpu_ms: float  # the serve tree's CPU per request at 50 connections


def urls_of(server: Server) -> dict[str, str]:
    """The tray the task lists bench reads, and the site's newest task."""
    query = f"?siteId={server.site_id}"
    newest = httpx.get(
        f"{server.base_url}{BASE}/task{query}&pageSize=1",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    ).json()[0]["id"]
    return {
        "tray": f"{server.base_url}{BASE}/tray/{server.tray_id}{query}",
        "task": f"{server.base_url}{BASE}/task/{newest}{query}",
    }


def sample(wrk: str, server: Server, url: str, duration: float) -> Sample:
    pids = process_tree(server.pid)
    cpu = cpu_seconds(pids)
    c50 = run_wrk(wrk, url, server.token, 50, duration)
    cpu_ms = (cpu_seconds(pids) - cpu) * 1000 / max(c50.rps * duration, 1)
    return Sample(c50, run_wrk(wrk, url, server.token, 1, 3), cpu_ms)


def row(label: str, get: str, samples: list[Sample]) -> str:
    c50 = median_load([s.c50 for s in samples])
    c1 = median_load([s.c1 for s in samples])
    cpu = statistics.median(s.cpu_ms for s in samples)
    return (
        f"{label:<8} {f'/{get}/{{id}}':<12} {c50.rps:>8.0f} {c50.p50_ms:>6.1f} ms "
        f"{c50.p99_ms:>6.1f} ms {cpu:>6.2f} ms {c1.p50_ms:>6.2f} ms {c50.errors + c1.errors:>6}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="postgres", choices=("sqlite", "postgres"))
    parser.add_argument("--tasks", type=int, default=200, help="finished tasks seeded")
    parser.add_argument("--runs", type=int, default=3, help="rounds; cells are their medians")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds at 50 connections")
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="another checkout, measured interleaved")
    args = parser.parse_args()
    wrk = ensure_wrk()
    if args.db == "postgres" and not postgres_reachable():
        raise SystemExit("PostgreSQL unreachable (NICO_BENCH_POSTGRES)")
    targets = [Target("this", Path(sys.executable))]
    if args.baseline is not None:
        targets.insert(0, Target("baseline", args.baseline.resolve() / ".venv/bin/python"))
    samples: dict[tuple[str, str], list[Sample]] = {}
    with ExitStack() as stack:
        servers = [
            stack.enter_context(serving(t, args.db, args.tasks, args.api_workers)) for t in targets
        ]
        urls = [urls_of(server) for server in servers]
        for server, url in zip(servers, urls, strict=True):  # warm up: connections, caches
            run_wrk(wrk, url["tray"], server.token, 50, 3)
        for run in range(1, args.runs + 1):
            for get in GETS:
                for server, url in zip(servers, urls, strict=True):
                    label = server.target.label
                    done = sample(wrk, server, url[get], args.duration)
                    samples.setdefault((label, get), []).append(done)
                    print(f"run {run}/{args.runs} {row(label, get, [done])}", file=sys.stderr)

    print(
        f"\nGET /tray/{{id}} and GET /task/{{id}} on {args.db}, `nico serve` with "
        f"NICO_API_WORKERS={args.api_workers}, {args.tasks} finished tasks; wrk 50 "
        f"connections {args.duration:g} s (req/s, p50, p99, serve CPU per request) and "
        f"1 connection 3 s (p50 c1); medians of {args.runs} interleaved rounds\n"
    )
    header = (
        f"{'code':<8} {'GET':<12} {'req/s':>8} {'p50':>9} {'p99':>9} {'CPU/req':>9} "
        f"{'p50 c1':>9} {'errors':>6}"
    )
    print(header)
    print("-" * len(header))
    for get in GETS:
        for target in targets:
            print(row(target.label, get, samples[(target.label, get)]))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
