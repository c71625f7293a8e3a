"""Reads benchmark: the three task lists against a site with a long history.

    .venv/bin/python bench/reads.py [--sizes 200,10000,100000] [--million]
                                    [--db sqlite,postgres] [--baseline ../other-checkout]
                                    [--duration 5] [--runs 3] [--quick] [--api-workers 2]

(`make bench` runs it with `--sizes $(READS_SIZES)`, default 200,10000,100000.)

For each history size N and database, a fresh data dir (or a fresh PostgreSQL database)
gets the demo site and N finished tasks written through the store in bulk: spread over
100 racks of 35 trays (rack 1 is the demo rack, the others are history of racks since
retired), each task targeting its rack's 35 trays with a ~2 KB report, so a tray holds
1% of the site's tasks. Then a `nico serve` per size starts as a subprocess (embedded
Temporal dev server, worker and `--api-workers` API processes (default 2) of its own), all
sizes running at once, and `wrk` (Debian package; installed with apt-get when missing)
drives them from its own process:

- 50 connections for `--duration` seconds: req/s, p50, p99;
- 1 connection for 3 seconds: p50 (the latency of one request on an idle server);

for `GET /tray/{id}/task`, `GET /rack/{id}/task`, `GET /task` (pageSize 20), plain,
with `includeReport=true` and with `activeOnly=true` (none active). `--runs` rounds
(default 3), each measuring one variant on every size back to back, so a burst of load
from elsewhere on this shared machine reaches all sizes alike instead of skewing the one
measured at that moment; each row is the median of its runs. The last table gives each
list's req/s at the largest size over the smallest (1.00 = flat in history).

`--baseline DIR` serves another checkout (its `.venv`, its `nico serve`, history written
by its own schema) beside this one, measured in the same rounds, so rows compare within
a run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

BASE = "/v2/org/demo/nico"
DEFAULT_SIZES = (200, 10_000, 100_000)
MILLION = 1_000_000
RACKS = 100
TRAYS_PER_RACK = 35
CHUNK = 2_000
PG_ADMIN = os.environ.get("NICO_BENCH_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432")

ENDPOINTS = ("tray", "rack", "site")
VARIANTS: dict[str, dict[str, str]] = {
    "plain": {},
    "includeReport": {"includeReport": "true"},
    "activeOnly": {"activeOnly": "true"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- seeding (runs under the target's interpreter: its models, its store) ------------------


def report_of(task_id: uuid.UUID, trays: list[str]) -> dict[str, Any]:
    """A finished power task's TaskReportV1 (valid, so `includeReport` serializes it),
    about 2 KB of JSON."""
    del task_id
    at = "2026-01-01T00:00:00Z"
    return {
        "version": 1,
        "stages": [
            {
                "number": n,
                "status": "completed",
                "startedAt": at,
                "finishedAt": at,
                "steps": [
                    {
                        "componentType": kind,
                        "status": "completed",
                        "totalComponents": len(trays),
                        "completedComponents": len(trays),
                        "failedComponents": 0,
                        "startedAt": at,
                        "finishedAt": at,
                    }
                    for kind in ("Compute", "NVLinkSwitch", "PowerShelf")
                ],
            }
            for n in (1, 2, 3)
        ],
    }


async def seed_history(tasks: int) -> tuple[str, str, str]:
    """Demo inventory + `tasks` finished tasks; prints nothing, returns (site, rack, tray)."""
    from sqlalchemy import insert

    from nico.config import Settings
    from nico.seed import seed_demo
    from nico.services import build_services
    from nico.store import inventory
    from nico.store import tasks as task_store
    from nico.store.models import Task, TaskTray

    services = build_services(Settings(), create_keys=True)
    await services.db.migrate()
    demo = await seed_demo(services)
    if services.db.is_sqlite:  # a throwaway file: no fsync while seeding, a big page cache
        async with services.db.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA synchronous=OFF")
            await conn.exec_driver_sql("PRAGMA cache_size=-262144")
    async with services.db.session() as session:
        demo_trays = (await inventory.trays_of_racks(session, [demo.rack_id]))[demo.rack_id]
    rng = random.Random(7)
    racks: list[tuple[uuid.UUID, list[str]]] = [
        (demo.rack_id, sorted(str(t.id) for t in demo_trays)[:TRAYS_PER_RACK])
    ]
    racks += [
        (uuid.UUID(int=rng.getrandbits(128)), [str(uuid.uuid4()) for _ in range(TRAYS_PER_RACK)])
        for _ in range(RACKS - 1)
    ]
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / max(tasks, 1)
    bulk = getattr(task_store, "insert_tasks", None)  # the store's bulk path, when it has one
    link_columns = set(TaskTray.__table__.c.keys())
    for first in range(0, tasks, CHUNK):
        rows = []
        for i in range(first, min(first + CHUNK, tasks)):
            rack_id, trays = racks[i % RACKS]
            task_id = uuid.uuid4()
            created = start + step * i
            rows.append(
                {
                    "id": task_id,
                    "site_id": demo.site_id,
                    "rack_id": rack_id,
                    "operation_type": "PowerControl",
                    "operation_code": "power_on",
                    "description": "",
                    "status": "Failed" if i % 50 == 0 else "Succeeded",
                    "message": "",
                    "information": {"state": "on"},
                    "targets": {"Compute": trays},
                    "conflict_strategy": "reject",
                    "report": report_of(task_id, trays),
                    "workflow_id": str(task_id),
                    "started": created,
                    "finished": created + timedelta(seconds=30),
                    "created": created,
                    "updated": created + timedelta(seconds=30),
                }
            )
        async with services.db.session() as session:
            if bulk is not None:
                await bulk(session, rows)
            else:  # a checkout from before the bulk path: the same rows, its columns
                await session.execute(insert(Task), rows)
                links = [
                    {
                        k: v
                        for k, v in {
                            "task_id": r["id"],
                            "tray_id": uuid.UUID(t),
                            "site_id": r["site_id"],
                            "created": r["created"],
                        }.items()
                        if k in link_columns
                    }
                    for r in rows
                    for t in r["targets"]["Compute"]
                ]
                await session.execute(insert(TaskTray), links)
    try:  # fold the bulk import's counter deltas, as the first sweep would
        from nico.store.task_counts import compact_task_counts
    except ImportError:  # a checkout from before the counters
        pass
    else:
        await compact_task_counts(services.db)
    if not services.db.is_sqlite:
        async with services.db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE")
            # Write the bulk load's dirty pages out now, not in a checkpoint that would
            # land in the middle of some other size's measurement.
            await conn.exec_driver_sql("CHECKPOINT")
    await services.db.dispose()
    return str(demo.site_id), str(demo.rack_id), racks[0][1][0]


# --- load from wrk ----------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (apt-get install -y wrk)", file=sys.stderr, flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    for step in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "wrk"]):
        done = subprocess.run(sudo + step, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"wrk is not installed and {' '.join(step)} failed: {done.stderr}")
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not installed and apt-get could not install it")
    return found


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unparsed wrk latency {text!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]


def run_wrk(wrk: str, url: str, token: str, connections: int, seconds: float) -> Load:
    out = subprocess.run(
        [
            "nice",
            "-n",
            "5",
            wrk,
            "-t",
            "1" if connections == 1 else "2",
            "-c",
            str(connections),
            "-d",
            f"{seconds:g}s",
            "--timeout",
            "30s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    socket_errors = re.search(r"Socket errors: .*", out)
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))
    return Load(rps, p50, p99, errors)


# --- one (target, database, size) ---------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    label: str
    python: Path

    def nico(self) -> str:
        return str(self.python.parent / "nico")


@dataclass
class Row:
    label: str
    db: str
    tasks: int
    endpoint: str
    variant: str
    c50: Load
    c1: Load


def wait_until_up(url: str, token: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"nico serve exited with code {process.returncode}")
        try:
            if httpx.get(url, headers=headers, timeout=30).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise SystemExit("nico serve did not answer within 120 s")


def pg_database(action: str, name: str) -> None:
    asyncio.run(pg_database_async(action, name))


async def pg_database_async(action: str, name: str) -> None:
    """Create or drop (`action`) a throwaway database on the bench's PostgreSQL server."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"{PG_ADMIN}/postgres", isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            if action == "create":
                await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            else:
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await engine.dispose()


def postgres_reachable() -> bool:
    try:
        pg_database("drop", "nico_bench_probe")
        return True
    except Exception:
        return False


@dataclass(frozen=True)
class Server:
    """A seeded, running `nico serve` of one target, database and history size."""

    target: Target
    db: str
    tasks: int
    base_url: str
    token: str
    paths: dict[str, str]
    query: str
    site_id: str
    tray_id: str
    pid: int  # `nico serve`'s, the root of its process tree

    def url(self, endpoint: str, variant: str) -> str:
        extra = "".join(f"&{k}={v}" for k, v in VARIANTS[variant].items())
        return self.base_url + self.paths[endpoint] + self.query + extra


@contextmanager
def serving(target: Target, db: str, tasks: int, api_workers: int) -> Iterator[Server]:
    """Seed a fresh data dir (or PostgreSQL database) with `tasks` tasks, start the
    target's `nico serve` on it, and stop and remove both on exit."""
    with tempfile.TemporaryDirectory(prefix="nico-reads-") as tmp:
        dev_key = "reads-" + uuid.uuid4().hex
        env = {
            **os.environ,
            "NICO_DATA_DIR": tmp,
            "NICO_PORT": str(free_port()),
            "NICO_TEMPORAL_DEV_PORT": str(free_port()),
            "NICO_SECRET_KEY": Fernet.generate_key().decode(),
            "NICO_AUTH_DEV_KEY": dev_key,
            "NICO_LOG_LEVEL": "WARNING",
            "NICO_API_WORKERS": str(api_workers),
            "NICO_STATE_SYNC_INTERVAL": "0",
        }
        env.pop("NICO_TEMPORAL_ADDRESS", None)
        env.pop("NICO_DATABASE_URL", None)
        pg_name = f"nico_bench_{uuid.uuid4().hex[:10]}"
        if db == "postgres":
            pg_database("create", pg_name)
            env["NICO_DATABASE_URL"] = f"{PG_ADMIN}/{pg_name}"
        try:
            seeded = subprocess.run(
                [str(target.python), __file__, "--seed", str(tasks)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            site_id, rack_id, tray_id = seeded.stdout.split()[-3:]
            from nico.auth.tokens import mint_dev_token

            with open(Path(tmp) / "serve.log", "wb") as log:
                process = subprocess.Popen(
                    [target.nico(), "serve"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                server = Server(
                    target,
                    db,
                    tasks,
                    f"http://127.0.0.1:{env['NICO_PORT']}",
                    mint_dev_token(dev_key, "demo", ["PROVIDER_ADMIN"]),
                    {
                        "tray": f"{BASE}/tray/{tray_id}/task",
                        "rack": f"{BASE}/rack/{rack_id}/task",
                        "site": f"{BASE}/task",
                    },
                    f"?siteId={site_id}&pageSize=20",
                    site_id,
                    tray_id,
                    process.pid,
                )
                try:
                    wait_until_up(server.url("site", "plain"), server.token, process)
                    yield server
                finally:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(30)
                    except subprocess.TimeoutExpired:
                        os.killpg(process.pid, signal.SIGKILL)
                        process.wait()
        finally:
            if db == "postgres":
                pg_database("drop", pg_name)


def median_load(loads: list[Load]) -> Load:
    return Load(
        statistics.median(x.rps for x in loads),
        statistics.median(x.p50_ms for x in loads),
        statistics.median(x.p99_ms for x in loads),
        sum(x.errors for x in loads),
    )


def measure(
    servers: list[Server],
    wrk: str,
    duration: float,
    runs: int,
    variants: list[tuple[str, str]],
) -> list[Row]:
    """Every server under every variant, `runs` rounds; within a round the servers of
    one variant are measured back to back, so a change in the shared machine's load
    reaches every size and checkout alike. Each row holds the medians of its runs."""
    for server in servers:  # warm up (connections, statement caches, the sweep settling)
        run_wrk(wrk, server.url("tray", "plain"), server.token, 50, 3)
    samples: dict[tuple[int, str, str], tuple[list[Load], list[Load]]] = {}
    for run in range(1, runs + 1):
        for endpoint, variant in variants:
            for index, server in enumerate(servers):
                url = server.url(endpoint, variant)
                c50s, c1s = samples.setdefault((index, endpoint, variant), ([], []))
                c50s.append(run_wrk(wrk, url, server.token, 50, duration))
                c1s.append(run_wrk(wrk, url, server.token, 1, 3))
                row = Row(
                    server.target.label,
                    server.db,
                    server.tasks,
                    endpoint,
                    variant,
                    c50s[-1],
                    c1s[-1],
                )
                print(f"run {run}/{runs} {row_line(row)}", file=sys.stderr, flush=True)
    return [
        Row(
            servers[index].target.label,
            servers[index].db,
            servers[index].tasks,
            endpoint,
            variant,
            median_load(c50s),
            median_load(c1s),
        )
        for (index, endpoint, variant), (c50s, c1s) in samples.items()
    ]


# --- output -----------------------------------------------------------------------------------


def row_line(r: Row) -> str:
    return (
        f"{r.label:<8} {r.db:<8} {r.tasks:>9,} {r.endpoint:<5} {r.variant:<13} "
        f"{r.c50.rps:>8.0f} {r.c50.p50_ms:>6.1f} ms {r.c50.p99_ms:>6.1f} ms "
        f"{r.c1.p50_ms:>6.2f} ms {r.c50.errors + r.c1.errors:>6}"
    )


def print_tables(rows: list[Row], duration: float, runs: int, api_workers: int) -> None:
    print(
        f"\nTask lists, `nico serve` with NICO_API_WORKERS={api_workers} (worker and API in "
        f"processes of their own), pageSize 20, finished tasks over "
        f"{RACKS} racks x {TRAYS_PER_RACK} trays (a tray holds 1%), ~2 KB report each;\n"
        f"wrk from its own process: 50 connections {duration:g} s (req/s, p50, p99) and "
        f"1 connection 3 s (p50 c1); medians of {runs} interleaved runs\n"
    )
    header = (
        f"{'code':<8} {'db':<8} {'tasks':>9} {'list':<5} {'variant':<13} "
        f"{'req/s':>8} {'p50':>9} {'p99':>9} {'p50 c1':>9} {'errors':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(row_line(r))
    groups: dict[tuple[str, str, str, str], dict[int, float]] = {}
    for r in rows:
        groups.setdefault((r.label, r.db, r.endpoint, r.variant), {})[r.tasks] = r.c50.rps
    print(
        "\nreq/s at the largest size / req/s at each smaller size (1.00 = flat in history);"
        "\nitems: the page's items at each size (a 2-item page costs less to send than 20)\n"
    )
    for (label, db, endpoint, variant), by_size in groups.items():
        large = max(by_size)
        for small in sorted(by_size)[:-1]:
            items = (
                f"{page_items(endpoint, variant, small)}->{page_items(endpoint, variant, large)}"
            )
            print(
                f"{label:<8} {db:<8} {endpoint:<5} {variant:<13} "
                f"{large:>9,} / {small:<6,} {by_size[large] / by_size[small]:>6.2f}"
                f"   items {items}"
            )


def page_items(endpoint: str, variant: str, tasks: int) -> int:
    """How many tasks a 20-task page of this list holds at `tasks` tasks of history: all
    are finished, and the measured rack (the first) gets every RACKS-th task, rounded up."""
    if variant == "activeOnly":
        return 0
    return min(20, tasks if endpoint == "site" else -(-tasks // RACKS))


def parse_sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=DEFAULT_SIZES)
    parser.add_argument("--million", action="store_true", help="add a 1,000,000-task size")
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite,postgres (default both)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds at 50 connections")
    parser.add_argument("--runs", type=int, default=3, help="rounds; rows are their medians")
    parser.add_argument(
        "--quick", action="store_true", help="only the tray list (plain, includeReport, activeOnly)"
    )
    parser.add_argument("--baseline", type=Path, help="another checkout, measured interleaved")
    parser.add_argument(
        "--api-workers",
        type=int,
        default=2,
        help="NICO_API_WORKERS for `nico serve` (default 2, one per core of the bench host; "
        "a checkout that predates it runs one)",
    )
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed is not None:
        print(*asyncio.run(seed_history(args.seed)))
        sys.stdout.flush()
        os._exit(0)
    wrk = ensure_wrk()
    sizes = args.sizes + ((MILLION,) if args.million else ())
    dbs = [d for d in args.db.split(",") if d]
    if "postgres" in dbs and not postgres_reachable():
        print("PostgreSQL unreachable: SQLite only", file=sys.stderr)
        dbs.remove("postgres")
    variants = [("tray", v) for v in VARIANTS]
    if not args.quick:
        variants += [(e, v) for e in ("rack", "site") for v in ("plain", "activeOnly")]
    targets = [Target("this", Path(sys.executable))]
    if args.baseline is not None:
        targets.insert(0, Target("baseline", args.baseline.resolve() / ".venv/bin/python"))
    rows: list[Row] = []
    for db in dbs:
        with ExitStack() as stack:
            servers = []
            for tasks in sizes:
                for target in targets:
                    servers.append(
                        stack.enter_context(serving(target, db, tasks, args.api_workers))
                    )
                    print(f"{target.label} {db} {tasks}: serving", file=sys.stderr, flush=True)
            rows += measure(servers, wrk, args.duration, args.runs, variants)
    print_tables(rows, args.duration, args.runs, args.api_workers)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
