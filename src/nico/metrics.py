"""Prometheus metrics of every nico process, and `/metrics` to read them.

One process (`nico api`, one `nico worker`) exports its own counters. Where several
processes serve one endpoint (`nico serve` runs the API and the worker as children;
gunicorn-style replicas on one host), `NICO_METRICS_DIR` names a directory they all write
to and `/metrics` adds them up (prometheus_client's multiprocess mode); `nico serve` uses
`<data_dir>/metrics` unless told otherwise and empties it when it starts.

Counted as they happen: HTTP requests by route template and status; BMC calls by backend
and action with their latency and errors; finished tasks by operation and status with
their durations and their steps' durations; reconciler actions. Read from the database
at scrape time (so every process agrees): tasks by status and operation, and the queue
depth (Waiting tasks) per site.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

METRICS_DIR_ENV = "NICO_METRICS_DIR"
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
if os.environ.get(METRICS_DIR_ENV):
    # prometheus_client picks its value store when first imported.
    os.environ.setdefault(_MULTIPROC_ENV, os.environ[METRICS_DIR_ENV])
    Path(os.environ[_MULTIPROC_ENV]).mkdir(parents=True, exist_ok=True)

from prometheus_client import (  # noqa: E402 (after the multiprocess switch)
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

# Re-exported: a module importing prometheus_client before this one would pick the
# in-memory value store and its counts would never reach the shared directory.
from prometheus_client.core import GaugeMetricFamily as GaugeMetricFamily  # noqa: E402

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

HTTP_REQUESTS = Counter(
    "nico_http_requests_total",
    "HTTP requests by route template and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "nico_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["method", "route"],
    buckets=CALL_BUCKETS,
)
TASKS_FINISHED = Counter(
    "nico_tasks_finished_total",
    "Tasks that reached a final status, by operation.",
    ["operation", "status"],
)
TASK_SECONDS = Histogram(
    "nico_task_duration_seconds",
    "Task run time (started to finished) by operation.",
    ["operation", "status"],
    buckets=DURATION_BUCKETS,
)
STEP_SECONDS = Histogram(
    "nico_step_duration_seconds",
    "Rule step run time by component type and final status.",
    ["component_type", "status"],
    buckets=DURATION_BUCKETS,
)
BMC_SECONDS = Histogram(
    "nico_bmc_call_duration_seconds",
    "Calls to a tray's BMC by backend and action.",
    ["backend", "action"],
    buckets=CALL_BUCKETS,
)
BMC_ERRORS = Counter(
    "nico_bmc_call_errors_total",
    "Failed calls to a tray's BMC by backend and action.",
    ["backend", "action"],
)
STATE_SYNC_READS = Counter(
    "nico_state_sync_reads_total",
    "Tray reads of the state sync by kind (power, firmware) and result (ok, failed).",
    ["kind", "result"],
)
STATE_SYNC_PASS_SECONDS = Histogram(
    "nico_state_sync_pass_duration_seconds",
    "How long a state sync pass over every tray took (about the interval when on time).",
    buckets=DURATION_BUCKETS,
)
RECONCILER_ACTIONS = Counter(
    "nico_reconciler_actions_total", "What the reconciler did to stale tasks.", ["action"]
)


def prepare_dir(data_dir: Path) -> None:
    """For `nico serve`: its children share `NICO_METRICS_DIR` (default under the data
    dir), emptied first so counts of an earlier run do not linger."""
    target = Path(os.environ.get(METRICS_DIR_ENV) or data_dir / "metrics")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    os.environ[METRICS_DIR_ENV] = str(target)
    # Set for the children from their first instruction, whatever they import first.
    os.environ[_MULTIPROC_ENV] = str(target)


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
        finish = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max((finish - begin).total_seconds(), 0.0)


def task_finished(
    operation: str,
    status: str,
    started: datetime | None,
    finished: datetime | None,
    report: dict[str, Any] | None,
) -> None:
    """Count a task that reached its final status, with its and its steps' durations."""
    TASKS_FINISHED.labels(operation, status).inc()
    if started is not None and finished is not None:
        TASK_SECONDS.labels(operation, status).observe(
            max((finished - started).total_seconds(), 0.0)
        )
    for stage in (report or {}).get("stages", []):
        for step in stage.get("steps", []):
            took = _seconds(step.get("startedAt"), step.get("finishedAt"))
            if took is not None:
                STEP_SECONDS.labels(
                    str(step.get("componentType")), str(step.get("status"))
                ).observe(took)


class MeteredBackend:
    """A tray backend whose async calls are timed and counted (errors included)."""

    def __init__(self, name: str, inner: Any) -> None:
        self._name = name
        self._inner = inner

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._inner, attr)
        if attr.startswith("_") or not callable(value) or attr == "aclose":
            return value
        import inspect

        if not inspect.iscoroutinefunction(value):
            return value
        return self._timed(attr, value)

    def _timed(
        self, action: str, call: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await call(*args, **kwargs)
            except Exception:
                BMC_ERRORS.labels(self._name, action).inc()
                raise
            finally:
                BMC_SECONDS.labels(self._name, action).observe(time.perf_counter() - start)

        return timed


def exposition(*extra: Any) -> tuple[bytes, str]:
    """The Prometheus text of this process (or, in multiprocess mode, of all of them),
    then of the `extra` collectors (gauges read by the caller)."""
    registry = CollectorRegistry()
    if os.environ.get(_MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    body = generate_latest(registry)
    more = CollectorRegistry()
    for collector in extra:
        more.register(collector)
    return body + generate_latest(more), CONTENT_TYPE_LATEST
