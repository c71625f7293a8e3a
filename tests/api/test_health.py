"""Probes and outages as an operator and a load balancer see them: /healthz, /readyz
naming what is not ready, and 503 (not 500) on every route while PostgreSQL is down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from nico.api.app import create_app
from nico.config import Settings
from nico.services import Services, build_services
from nico.store.tasks import insert_tasks
from tests.rules.support import make_site
from tests.support.pgcluster import PrivateCluster, private_cluster
from tests.support.task_counts import make_row

BASE = "/v2/org/demo/nico"


def asgi(services: Services, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(services), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://nico.test", headers=headers)


async def test_healthz_answers_without_a_token(services: Services) -> None:
    async with asgi(services) as client:
        response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_needs_database_at_head_and_temporal(
    services: Services, temporal_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    async with asgi(services) as client:
        without = await client.get("/readyz")
        assert without.status_code == 503
        assert without.json()["message"] == "Not ready: temporal not connected"
        services.temporal = temporal_env.client
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()["status"]) == (200, "ready")

    fresh = build_services(settings.model_copy(update={"data_dir": tmp_path / "fresh"}))
    fresh.temporal = temporal_env.client
    try:
        async with asgi(fresh) as client:
            unmigrated = await client.get("/readyz")
        assert unmigrated.status_code == 503
        assert unmigrated.json()["data"] == {
            "database": "schema not migrated (run `nico db upgrade`)"
        }
    finally:
        await fresh.db.dispose()


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    with private_cluster() as running:
        yield running


@pytest.fixture
async def pg_services(
    cluster: PrivateCluster, settings: Settings, temporal_env: WorkflowEnvironment
) -> AsyncIterator[Services]:
    services = build_services(settings.model_copy(update={"database_url": cluster.url}))
    await services.db.migrate()
    services.temporal = temporal_env.client
    yield services
    await services.db.dispose()


@pytest.mark.postgres
async def test_postgres_stopped_is_503_on_readyz_and_every_route(
    cluster: PrivateCluster, pg_services: Services, auth: dict[str, str]
) -> None:
    site_id = await make_site(pg_services.db)
    async with asgi(pg_services, auth) as client:
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get(f"{BASE}/site")).status_code == 200
        await asyncio.to_thread(cluster.stop)

        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["message"] == "Not ready: database unreachable"
        assert (await client.get("/healthz")).status_code == 200

        for method, path, body in (
            ("GET", f"{BASE}/site", None),
            ("GET", f"{BASE}/rack?siteId={site_id}", None),
            ("GET", f"{BASE}/task?siteId={site_id}", None),
            ("POST", f"{BASE}/site", {"name": "new"}),
            ("PATCH", f"{BASE}/rack/power", {"siteId": str(site_id), "state": "on", "all": True}),
        ):
            response = await client.request(method, path, json=body)
            assert response.status_code == 503, (method, path, response.text)
            message = response.json()["message"]
            assert message.startswith("Service unavailable: nico's database is not answering")
            assert str(cluster.port) not in response.text and "asyncpg" not in response.text

        await asyncio.to_thread(cluster.start)
        for _ in range(50):
            if (await client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.2)
        assert (await client.get(f"{BASE}/site")).status_code == 200


@pytest.mark.postgres
async def test_lists_answer_the_first_request_after_postgres_restarts(
    cluster: PrivateCluster, pg_services: Services, auth: dict[str, str]
) -> None:
    """Task lists and /metrics read from a pool that skips the ping before each request;
    a pooled connection that died with the server fails as a disconnect and the read runs
    again on a new one, so the first requests after a restart answer 200 with the same
    page, not 503."""
    site_id = await make_site(pg_services.db)
    async with pg_services.db.session() as session:
        await insert_tasks(session, [make_row(site_id, "Succeeded", age=n) for n in range(3)])
    url = f"{BASE}/task?siteId={site_id}&pageSize=2"
    async with asgi(pg_services, auth) as client:
        # Several at once, so the pool holds more than one connection when the server dies.
        warm = await asyncio.gather(*(client.get(url) for _ in range(4)))
        assert [r.status_code for r in warm] == [200] * 4
        before = warm[0]
        assert (await client.get("/metrics")).status_code == 200

        await asyncio.to_thread(cluster.stop)
        await asyncio.to_thread(cluster.start)

        after = await asyncio.gather(*(client.get(url) for _ in range(4)))
        for response in after:
            assert response.status_code == 200, response.text
            assert response.json() == before.json()
            assert response.headers["X-Pagination"] == before.headers["X-Pagination"]
        assert len(before.json()) == 2
        assert (await client.get("/metrics")).status_code == 200
