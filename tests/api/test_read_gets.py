"""GETs that only read, on PostgreSQL (docs/architecture.md, "API conventions"): they send
the server their statements alone, with no ping, BEGIN or COMMIT around them (each one a
round trip), and still answer the first request after PostgreSQL restarts."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.pool import Pool

from nico.api.app import create_app
from nico.services import Services
from nico.store.models import OperationRule
from nico.store.tasks import insert_tasks
from tests.support.inventory import make_site_with_rack
from tests.support.pgcluster import PrivateCluster
from tests.support.task_counts import make_row

BASE = "/v2/org/demo/nico"

pytestmark = pytest.mark.postgres


def asgi(services: Services, headers: dict[str, str]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(services), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://nico.test", headers=headers)


async def read_only_gets(services: Services) -> list[str]:
    """A site with a rack, a task and the built-in rules; every GET that only reads them."""
    made = await make_site_with_rack(services)
    task = make_row(made.site_id, "Succeeded")
    async with services.db.session() as session:
        await insert_tasks(session, [task])
        rule = await session.scalar(
            select(OperationRule.id).where(OperationRule.site_id == made.site_id).limit(1)
        )
    site, rack, tray = made.site_id, made.rack_id, made.tray_ids[0]
    q = f"siteId={site}"
    return [
        f"{BASE}/task/{task['id']}?{q}",
        f"{BASE}/task?{q}",
        f"{BASE}/rack?{q}&includeComponents=true",
        f"{BASE}/rack/{rack}?{q}&includeComponents=true",
        f"{BASE}/tray?{q}&pageSize=100",
        f"{BASE}/tray/{tray}?{q}",
        *(
            f"{BASE}/{kind}/{id_}/{read}?{q}"
            for kind, id_ in (("rack", rack), ("tray", tray))
            for read in ("power", "firmware", "history", "task")
        ),
        f"{BASE}/task/rule?{q}",
        f"{BASE}/task/rule/{rule}?{q}",
        f"{BASE}/rack/{rack}/rule/PowerControl/power_on?{q}",
        f"{BASE}/site",
        f"{BASE}/site/{site}",
        f"{BASE}/simulator/fault?{q}",
    ]


async def test_read_only_gets_send_postgres_nothing_but_their_statements(
    pg_services: Services, auth: dict[str, str]
) -> None:
    """What asyncpg sends besides the statements themselves (which it does not log):
    the main pool's ping (BEGIN, `;`, ROLLBACK) and the transaction around the request
    (BEGIN, COMMIT), five round trips a request."""
    urls = await read_only_gets(pg_services)
    sent: list[str] = []
    logging: set[int] = set()

    def log_queries(dbapi_connection: Any, *_: Any) -> None:
        connection = dbapi_connection.driver_connection
        if id(connection) not in logging:
            logging.add(id(connection))
            connection.add_query_logger(lambda record: sent.append(record.query))

    event.listen(Pool, "checkout", log_queries)
    try:
        async with asgi(pg_services, auth) as client:
            for url in urls + urls:  # every pooled connection logs from here on
                assert (await client.get(url)).status_code == 200, url
            await asyncio.sleep(0.05)  # the loggers run on the loop's next turns
            for url in urls:
                sent.clear()
                response = await client.get(url)
                await asyncio.sleep(0.01)
                assert response.status_code == 200, (url, response.text)
                assert sent == [], url
    finally:
        event.remove(Pool, "checkout", log_queries)


async def test_read_only_gets_answer_the_first_request_after_postgres_restarts(
    cluster: PrivateCluster, pg_services: Services, auth: dict[str, str]
) -> None:
    """Without the ping, a pooled connection that died with the server fails its first
    statement; the read then runs again on a new connection. So the first requests after
    a restart, all at once so that each pooled connection is a dead one, answer 200 with
    the bodies they answered before, not 503."""
    urls = await read_only_gets(pg_services)
    async with asgi(pg_services, auth) as client:
        # All at once, so the pool holds all the connections it may when the server dies.
        before = await asyncio.gather(*(client.get(url) for url in urls))
        for url, response in zip(urls, before, strict=True):
            assert response.status_code == 200, (url, response.text)

        await asyncio.to_thread(cluster.stop)
        await asyncio.to_thread(cluster.start)

        after = await asyncio.gather(*(client.get(url) for url in urls))
        for url, old, new in zip(urls, before, after, strict=True):
            assert new.status_code == 200, (url, new.text)
            assert new.json() == old.json(), url
            assert new.headers.get("X-Pagination") == old.headers.get("X-Pagination"), url
