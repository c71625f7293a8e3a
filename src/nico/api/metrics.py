"""`GET /metrics` and the request counts behind it (what nico.metrics counts elsewhere,
plus gauges read from the database at each scrape so that every process agrees)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from nico.metrics import GaugeMetricFamily, exposition
from nico.services import Services

router = APIRouter(include_in_schema=False)


class DatabaseGauges:
    """Gauges read from the database once per scrape (the same from every process)."""

    def __init__(self, tasks: list[tuple[str, str, int]], queues: list[tuple[str, int]]) -> None:
        self._tasks = tasks
        self._queues = queues

    def collect(self) -> Any:
        tasks = GaugeMetricFamily(
            "nico_tasks", "Tasks by status and operation.", labels=["status", "operation"]
        )
        for status, operation, count in self._tasks:
            tasks.add_metric([status, operation], count)
        yield tasks
        queue = GaugeMetricFamily(
            "nico_queue_depth", "Waiting (queued) tasks per site.", labels=["site"]
        )
        for site, count in self._queues:
            queue.add_metric([site], count)
        yield queue


async def database_gauges(services: Services) -> DatabaseGauges:
    """Read from the task counters (`nico.store.task_counts`): a few rows per site, not a
    count over every task ever run."""
    from nico.domain import TaskStatus
    from nico.store.task_counts import totals_by_site_name, totals_by_status_and_operation

    async def read(conn: AsyncConnection) -> DatabaseGauges:
        rows = await conn.execute(totals_by_status_and_operation())
        tasks = [(str(s), str(o), int(n)) for s, o, n in rows]
        waiting = await conn.execute(totals_by_site_name(TaskStatus.WAITING.value))
        queues = [(str(name), int(n)) for name, n in waiting]
        return DatabaseGauges(tasks, queues)

    return await services.db.read(read)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text format (see nico.metrics for what is counted)."""
    body, content_type = exposition(await database_gauges(request.app.state.services))
    return Response(body, media_type=content_type)


class RequestMetrics:
    """Counts every HTTP request by method, route template (never the raw path, whose
    ids would make a series per resource) and status, with its latency."""

    def __init__(self, app: Any, prefix: str = "") -> None:
        self.app = app
        # Routes included under the API prefix may report only their own part.
        self.prefix = prefix

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from nico.metrics import HTTP_REQUESTS, HTTP_SECONDS

        start = time.perf_counter()
        status = 500

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            under_prefix = str(scope.get("path", "")).startswith(self.prefix.split("{", 1)[0])
            if self.prefix and under_prefix and not route.startswith(self.prefix):
                route = self.prefix + route
            method = str(scope.get("method", ""))
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_SECONDS.labels(method, route).observe(time.perf_counter() - start)


def install_metrics(app: FastAPI) -> None:
    """`/metrics`, and every request counted by route template."""
    app.include_router(router)
    services: Services = app.state.services
    app.add_middleware(RequestMetrics, prefix=services.settings.api_prefix())
