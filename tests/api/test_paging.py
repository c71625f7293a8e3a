"""Paging on every list (read from the app's OpenAPI) and its edges on the tray list."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from nico.api.app import create_app
from nico.services import Services
from tests.support.inventory import create_nvl72_rack, create_site
from tests.support.routes import nico_routes

BASE = "/v2/org/demo/nico"


@pytest.fixture
async def site_id(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    site = await create_site(client, auth)
    await create_nvl72_rack(client, auth, site["id"])
    return str(site["id"])


async def tray_page(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: str, **params: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    response = await client.get(f"{BASE}/tray", params={"siteId": site_id, **params}, headers=auth)
    assert response.status_code == 200, response.text
    return response.json(), json.loads(response.headers["X-Pagination"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"pageSize": "0"}, "pageSize"),
        ({"pageSize": "101"}, "pageSize"),
        ({"pageSize": "-5"}, "pageSize"),
        ({"pageSize": "ten"}, "pageSize"),
        ({"pageNumber": "0"}, "pageNumber"),
        ({"pageNumber": "-1"}, "pageNumber"),
        ({"pageNumber": "1.5"}, "pageNumber"),
        ({"pageNumber": "2147483648"}, "pageNumber"),
        ({"pageNumber": str(2**62)}, "pageNumber"),
    ],
)
async def test_bad_paging_is_400_on_every_list(
    services: Services,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    site_id: str,
    params: dict[str, str],
    field: str,
) -> None:
    lists = [r for r in nico_routes(create_app(services)) if r.paged and not r.has_body]
    templates = {r.template.rsplit("/nico", 1)[1] for r in lists}
    assert {"/tray", "/rack", "/site"} <= templates
    wrong = []
    for route in lists:
        site = {"siteId": site_id} if route.site_scoped_by_query else {}
        response = await client.request(
            route.method, route.url(), params={**site, **params}, headers=auth
        )
        if response.status_code != 400 or field not in (response.json()["data"] or {}):
            wrong.append(f"{route}: {response.status_code} {response.text}")
    assert wrong == []


@pytest.mark.parametrize(
    "params",
    [{"pageNumber": "abc"}, {"pageSize": "ten"}, {"pageNumber": "1.5", "pageSize": "x"}],
)
async def test_non_numeric_paging_is_upstreams_parse_error_on_every_list(
    services: Services,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    site_id: str,
    params: dict[str, str],
) -> None:
    lists = [r for r in nico_routes(create_app(services)) if r.paged and not r.has_body]
    wrong = []
    for route in lists:
        site = {"siteId": site_id} if route.site_scoped_by_query else {}
        response = await client.request(
            route.method, route.url(), params={**site, **params}, headers=auth
        )
        body = response.json()
        got = (response.status_code, body["message"], sorted(body["data"] or {}))
        if got != (400, "Failed to parse request pagination data", sorted(params)):
            wrong.append(f"{route}: {got}")
    assert wrong == []


async def test_paging_messages(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: str
) -> None:
    too_big = await client.get(
        f"{BASE}/tray", params={"siteId": site_id, "pageSize": 101}, headers=auth
    )
    assert too_big.json()["data"] == {"pageSize": "must be less than or equal to 100"}
    far = await client.get(
        f"{BASE}/tray", params={"siteId": site_id, "pageNumber": 2**62}, headers=auth
    )
    assert far.json() == {
        "source": "nico",
        "message": "Failed to validate pagination request data: "
        "pageNumber: must be less than or equal to 2147483647",
        "data": {"pageNumber": "must be less than or equal to 2147483647"},
    }
    zero = await client.get(
        f"{BASE}/tray", params={"siteId": site_id, "pageNumber": 0, "pageSize": 0}, headers=auth
    )
    assert zero.json()["data"] == {
        "pageNumber": "must be greater than 0",
        "pageSize": "must be greater than 0",
    }
    assert zero.json()["message"].startswith("Failed to validate pagination request data")


async def test_defaults_and_header(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: str
) -> None:
    items, header = await tray_page(client, auth, site_id)
    assert len(items) == 20
    assert header == {"pageNumber": 1, "pageSize": 20, "total": 35, "orderBy": None}
    response = await client.get(
        f"{BASE}/tray", params={"siteId": site_id, "orderBy": "NAME_DESC"}, headers=auth
    )
    assert response.headers["X-Pagination"] == (
        '{"pageNumber":1,"pageSize":20,"total":35,"orderBy":"NAME_DESC"}'
    )


async def test_last_partial_page_and_beyond(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: str
) -> None:
    last, header = await tray_page(client, auth, site_id, pageSize=10, pageNumber=4)
    assert len(last) == 5
    assert header == {"pageNumber": 4, "pageSize": 10, "total": 35, "orderBy": None}
    beyond, header = await tray_page(client, auth, site_id, pageSize=10, pageNumber=5)
    assert beyond == []
    assert header["total"] == 35


@pytest.mark.parametrize("order", [None, "NAME_ASC", "MODEL_DESC", "TYPE_ASC"])
async def test_pages_partition_the_list(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: str, order: str | None
) -> None:
    """Walking pages of 8 yields every tray once, in the order one big page has."""
    extra = {"orderBy": order} if order else {}
    everything, _ = await tray_page(client, auth, site_id, pageSize=100, **extra)
    walked: list[str] = []
    for number in range(1, 6):
        page, _ = await tray_page(client, auth, site_id, pageSize=8, pageNumber=number, **extra)
        walked += [t["id"] for t in page]
    assert walked == [t["id"] for t in everything]
    assert len(set(walked)) == 35


@pytest.mark.parametrize("path", ["/rack", "/tray", "/site"])
async def test_page_number_past_the_sql_offset_is_400_on_every_database(
    any_db_client: httpx.AsyncClient, auth: dict[str, str], path: str
) -> None:
    """The last allowed page is an empty page; one past it, or 2**62 (an offset no
    database integer holds), is a 400 naming pageNumber, not a 500."""
    site = await create_site(any_db_client, auth)
    scope = {} if path == "/site" else {"siteId": site["id"]}
    last = await any_db_client.get(
        f"{BASE}{path}", params={**scope, "pageNumber": 2**31 - 1, "pageSize": 100}, headers=auth
    )
    assert (last.status_code, last.json()) == (200, [])
    assert json.loads(last.headers["X-Pagination"])["pageNumber"] == 2**31 - 1
    for number in (2**31, 2**62):
        response = await any_db_client.get(
            f"{BASE}{path}", params={**scope, "pageNumber": number, "pageSize": 100}, headers=auth
        )
        assert response.status_code == 400, response.text
        assert response.json()["data"] == {"pageNumber": "must be less than or equal to 2147483647"}


async def test_total_counts_after_filters(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: str
) -> None:
    page, header = await tray_page(client, auth, site_id, type="Compute", pageSize=5, pageNumber=2)
    assert len(page) == 5
    assert header["total"] == 18
    last, header = await tray_page(client, auth, site_id, type="Compute", pageSize=5, pageNumber=4)
    assert len(last) == 3


@pytest.mark.parametrize(
    ("path", "order_by"),
    [
        ("/tray", "NAME"),
        ("/tray", "SERIAL_ASC"),
        ("/tray", "name_asc"),
        ("/rack", "TYPE_ASC"),
        ("/site", "MODEL_DESC"),
    ],
)
async def test_bad_order_by_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: str, path: str, order_by: str
) -> None:
    params = {"orderBy": order_by} if path == "/site" else {"siteId": site_id, "orderBy": order_by}
    response = await client.get(f"{BASE}{path}", params=params, headers=auth)
    assert response.status_code == 400
    assert "orderBy" in response.json()["data"]
