"""`nico serve`'s preparation: migrate, seed the demo inventory once, print how to use it;
and the printed token + curl line really answer the 35 demo trays."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from nico.api.app import create_app
from nico.cli.serve import prepare, print_demo_banner
from nico.config import Settings
from nico.domain import OPERATION_CODES
from nico.services import Services, build_services
from nico.store.models import OperationRule, Rack, Site, Tray


@pytest.fixture
async def demo_services(settings: Settings) -> AsyncIterator[Services]:
    services = build_services(settings.model_copy(update={"seed_demo": True}))
    yield services
    await services.db.dispose()


def printed(output: str) -> tuple[str, str, str]:
    """(site id, token, tray curl URL) as a user would copy them from the output."""
    site = re.search(r"site id: ([0-9a-f-]{36})", output)
    token = re.search(r"^export TOKEN=(\S+)$", output, re.MULTILINE)
    url = re.search(r"curl .*'(http://\S+/tray\?\S+)'", output)
    assert site and token and url, output
    return site.group(1), token.group(1), url.group(1)


async def prepare_and_print(services: Services) -> None:
    """What `nico serve` does before it listens: migrate, seed, show the banner."""
    demo = await prepare(services)
    if demo is not None:
        print_demo_banner(services, demo)


async def count(services: Services, model: type[object]) -> int:
    async with services.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_printed_token_and_curl_line_answer_the_35_demo_trays(
    demo_services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    await prepare_and_print(demo_services)
    site_id, token, url = printed(capsys.readouterr().out)
    settings = demo_services.settings
    assert url.startswith(f"http://127.0.0.1:{settings.port}/v2/org/demo/nico/tray?")
    assert f"siteId={site_id}" in url and "pageSize=100" in url
    principal = await demo_services.verifier.verify(token)
    assert principal.is_provider_admin("demo")
    transport = httpx.ASGITransport(app=create_app(demo_services))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert json.loads(response.headers["X-Pagination"])["total"] == 35
    trays = response.json()
    assert len(trays) == 35
    assert Counter(t["type"] for t in trays) == {"Compute": 18, "NVLSwitch": 9, "PowerShelf": 8}
    names = {t["name"] for t in trays}
    assert {"compute-01", "compute-18", "nvswitch-09", "powershelf-08"} <= names
    assert len({t["serialNumber"] for t in trays}) == 35
    assert len({t["bmcs"][0]["macAddress"] for t in trays}) == 35
    assert {t["backend"] for t in trays} == {"simulator"}
    assert {t["rackName"] for t in trays} == {"rack-01"}


async def test_seeding_is_idempotent_and_installs_the_builtin_rules(
    demo_services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    await prepare_and_print(demo_services)
    first = printed(capsys.readouterr().out)[0]
    await prepare_and_print(demo_services)
    second = printed(capsys.readouterr().out)[0]
    assert first == second
    assert (await count(demo_services, Site), await count(demo_services, Rack)) == (1, 1)
    assert await count(demo_services, Tray) == 35
    async with demo_services.db.session() as session:
        site = (await session.execute(select(Site))).scalar_one()
        defaults = await session.execute(
            select(OperationRule.operation_code).where(
                OperationRule.site_id == site.id, OperationRule.is_default.is_(True)
            )
        )
        codes = sorted(defaults.scalars())
    assert site.name == "demo-site" and site.flow_enabled
    assert codes == sorted(c for codes in OPERATION_CODES.values() for c in codes)


async def test_renaming_the_demo_site_does_not_stop_the_next_start(
    demo_services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13 finding 1: the next start re-imported rack-01 into a new `demo-site` and
    crashed on its own tray serial numbers."""
    await prepare_and_print(demo_services)
    site_id, token, _ = printed(capsys.readouterr().out)
    transport = httpx.ASGITransport(app=create_app(demo_services))
    async with httpx.AsyncClient(transport=transport, base_url="http://nico.test") as client:
        renamed = await client.patch(
            f"/v2/org/demo/nico/site/{site_id}",
            json={"name": "lab"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert renamed.status_code == 200, renamed.text
    await prepare_and_print(demo_services)
    assert printed(capsys.readouterr().out)[0] == site_id
    assert (await count(demo_services, Site), await count(demo_services, Rack)) == (1, 1)
    assert await count(demo_services, Tray) == 35
    async with demo_services.db.session() as session:
        assert (await session.execute(select(Site.name))).scalar_one() == "lab"


async def test_no_seed_when_disabled(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    services = build_services(settings)  # the fixture's settings have seed_demo=False
    try:
        await prepare_and_print(services)
        assert await count(services, Site) == 0
    finally:
        await services.db.dispose()
    assert "site id" not in capsys.readouterr().out


async def test_without_a_dev_key_the_banner_asks_for_an_issuer_token(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    oidc = settings.model_copy(
        update={
            "seed_demo": True,
            "auth_dev_key": None,
            "auth_jwks_url": "http://127.0.0.1:9/certs",
            "auth_issuer": "https://issuer.example",
            "host": "0.0.0.0",
        }
    )
    services = build_services(oidc, create_keys=False)
    try:
        await prepare_and_print(services)
    finally:
        await services.db.dispose()
    output = capsys.readouterr().out
    assert "export TOKEN" not in output
    assert "OIDC issuer" in output
    assert f"http://127.0.0.1:{oidc.port}/v2/org/demo/nico/tray?siteId=" in output
