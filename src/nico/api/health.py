"""Probes for load balancers and orchestrators, and what the API answers while one of
nico's own services is down.

- `GET /healthz`: the process is up and serving (never touches a dependency).
- `GET /readyz`: the database answers and its schema is at the newest migration, and
  Temporal answers; otherwise 503 naming what is not ready (never a host or a port).
- While the database (or Temporal) does not answer, every route answers 503 with a
  message saying so, rather than a generic 500 that would send an operator looking at
  nico's code or at the request.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from functools import lru_cache

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect, text
from temporalio.service import RPCError

from nico.api.errors import UNEXPECTED, error_response
from nico.api.metrics import install_metrics
from nico.engine.infra import classify
from nico.engine.retries import DATABASE, TEMPORAL
from nico.services import Services

log = logging.getLogger("nico.api")
router = APIRouter(include_in_schema=False)

PROBE_TIMEOUT = 5.0
OUTAGE_MESSAGES = {
    DATABASE: "Service unavailable: nico's database is not answering; nothing was changed, "
    "retry later",
    TEMPORAL: "Service unavailable: Temporal is not answering; nothing was changed, retry later",
}


@lru_cache(maxsize=1)
def schema_head() -> str | None:
    """The newest migration this code ships."""
    from alembic.script import ScriptDirectory

    from nico.store.db import alembic_config

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def check_database(services: Services) -> str | None:
    """None when the database answers at the newest schema, else what is wrong."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT), services.db.engine.connect() as conn:
            migrated = await conn.run_sync(lambda c: inspect(c).has_table("alembic_version"))
            if not migrated:
                return "schema not migrated (run `nico db upgrade`)"
            version = (
                await conn.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one_or_none()
    except Exception as exc:
        if classify(exc) is None and not isinstance(exc, TimeoutError):
            log.warning("readiness: database check failed: %s", exc)
        return "unreachable"
    head = schema_head()
    if version != head:
        return f"schema at {version or 'nothing'}, this code needs {head} (run `nico db upgrade`)"
    return None


async def check_temporal(services: Services) -> str | None:
    """None when Temporal answers, else what is wrong."""
    client = services.temporal
    if client is None:
        return "not connected"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await client.service_client.check_health()
    except Exception as exc:
        # The log keeps what it was (a wrong namespace, TLS or auth looks the same here).
        log.warning("readiness: Temporal check failed: %s", exc)
        return "unreachable"
    return None


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    database, temporal = await asyncio.gather(check_database(services), check_temporal(services))
    problems = {
        name: problem
        for name, problem in (("database", database), ("temporal", temporal))
        if problem is not None
    }
    if problems:
        text_ = "; ".join(f"{name} {problem}" for name, problem in problems.items())
        return error_response(503, f"Not ready: {text_}", problems)
    return JSONResponse({"status": "ready", "database": "ok", "temporal": "ok"})


def outage_response(request: Request, exc: Exception) -> JSONResponse:
    """503 when `exc` is nico's database or Temporal not answering, else the usual 500."""
    kind = classify(exc)
    if kind is not None:
        log.warning("%s %s: %s unavailable: %s", request.method, request.url.path, kind, exc)
        return error_response(503, OUTAGE_MESSAGES[kind])
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, UNEXPECTED)


def outage_exception_types() -> list[type[Exception]]:
    """What a driver raises while its service is down (the handler still checks)."""
    types: list[type[Exception]] = [sa_exc.SQLAlchemyError, OSError, RPCError]
    asyncpg = importlib.import_module("asyncpg")
    types += [asyncpg.PostgresError, asyncpg.InterfaceError]
    return types


def install_health(app: FastAPI) -> None:
    """The probes and /metrics, request metrics, and 503 instead of 500 for an outage
    on every route."""
    app.include_router(router)
    install_metrics(app)

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return outage_response(request, exc)

    for kind in outage_exception_types():
        app.add_exception_handler(kind, handler)
