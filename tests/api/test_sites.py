"""Sites: create (provider on demand), list with the Flow filter, read, update, delete."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from nico.api.access import NO_PROVIDER, SITE_FOREIGN
from nico.domain import OPERATION_CODES
from nico.services import Services
from nico.store.models import OperationRule, Provider
from tests.conftest import TokenFactory
from tests.support.inventory import create_nvl72_rack, create_site

BASE = "/v2/org/demo/nico"


async def site_names(client: httpx.AsyncClient, auth: dict[str, str]) -> list[str]:
    response = await client.get(f"{BASE}/site", params={"pageSize": 100}, headers=auth)
    assert response.status_code == 200
    return [s["name"] for s in response.json()]


async def test_create_site_creates_the_provider_and_answers_the_site(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        f"{BASE}/site",
        json={"name": "dc-east", "description": "east hall", "capabilities": {"flow": True}},
        headers=auth,
    )
    assert response.status_code == 201
    site = response.json()
    assert set(site) == {
        "id",
        "name",
        "description",
        "infrastructureProviderId",
        "capabilities",
        "redfish",
        "created",
        "updated",
    }
    assert (site["name"], site["description"], site["capabilities"]) == (
        "dc-east",
        "east hall",
        {"flow": True},
    )
    assert site["redfish"] == {"verifyTls": None, "caBundle": None, "firmwareCatalog": None}
    assert site["created"].endswith("Z")
    provider = await client.get(f"{BASE}/infrastructure-provider/current", headers=auth)
    assert provider.json()["id"] == site["infrastructureProviderId"]
    fetched = await client.get(f"{BASE}/site/{site['id']}", headers=auth)
    assert fetched.json() == site


async def test_new_site_gets_a_default_rule_for_every_operation_code(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    site = await create_site(client, auth)
    async with services.db.session() as session:
        rows = await session.execute(
            select(OperationRule.operation_type, OperationRule.operation_code).where(
                OperationRule.site_id == uuid.UUID(site["id"]), OperationRule.is_default.is_(True)
            )
        )
        defaults = sorted((t, c) for t, c in rows.all())
    expected = sorted((t.value, c) for t, codes in OPERATION_CODES.items() for c in codes)
    assert defaults == expected


async def test_flow_is_off_unless_asked_for(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(f"{BASE}/site", json={"name": "plain"}, headers=auth)
    assert response.status_code == 201
    assert response.json()["capabilities"] == {"flow": False}


async def test_site_name_is_unique_per_provider(
    client: httpx.AsyncClient, auth: dict[str, str], make_token: TokenFactory
) -> None:
    await create_site(client, auth, name="dc-1")
    again = await client.post(f"{BASE}/site", json={"name": "dc-1"}, headers=auth)
    assert again.status_code == 409
    assert "dc-1" in again.json()["message"]
    assert await site_names(client, auth) == ["dc-1"]
    other = {"Authorization": f"Bearer {make_token(org='other')}"}
    await create_site(client, other, org="other", name="dc-1")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 257}, "name"),
        ({"name": "ok", "capabilities": {"flow": "maybe"}}, "capabilities.flow"),
        ({"name": "ok", "capabilities": {"nvLinkPartition": True}}, "capabilities.nvLinkPartition"),
        ({"name": "ok", "colour": "blue"}, "colour"),
        ({"name": "ok", "description": 7}, "description"),
        ({"name": "lab\x00"}, "name"),
        ({"name": "ok", "description": "a\x00b"}, "description"),
    ],
)
async def test_bad_site_body_is_400_naming_the_field_and_writes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = await client.post(f"{BASE}/site", json=body, headers=auth)
    assert response.status_code == 400
    assert field in response.json()["data"]
    assert field in response.json()["message"]
    assert await site_names(client, auth) == []


async def test_body_that_is_not_json_is_400(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        f"{BASE}/site", content=b"{name:", headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert await site_names(client, auth) == []


async def test_an_org_longer_than_its_column_is_400_after_the_role_check_on_every_database(
    any_db_client: httpx.AsyncClient, any_db_services: Services, make_token: TokenFactory
) -> None:
    """PostgreSQL refused the provider row (500); now the org is checked once the caller is
    known to be its admin, so a stranger still gets the 403."""
    long_org = "o" * 129
    admin = {"Authorization": f"Bearer {make_token(org=long_org)}"}
    stranger = {"Authorization": f"Bearer {make_token(org='demo')}"}
    base = f"/v2/org/{long_org}/nico"
    refused = await any_db_client.get(f"{base}/site", headers=stranger)
    assert refused.status_code == 403
    for method, path, body in (
        ("GET", "/infrastructure-provider/current", None),
        ("POST", "/site", {"name": "lab"}),
    ):
        response = await any_db_client.request(method, f"{base}{path}", json=body, headers=admin)
        assert response.status_code == 400, response.text
        assert response.json() == {
            "source": "nico",
            "message": "Invalid org specified in URL",
            "data": {"org": "must be at most 128 characters"},
        }
    async with any_db_services.db.session() as session:
        assert (await session.execute(select(Provider))).scalars().all() == []
    longest = "o" * 128
    longest_admin = {"Authorization": f"Bearer {make_token(org=longest)}"}
    created = await any_db_client.post(
        f"/v2/org/{longest}/nico/site", json={"name": "lab"}, headers=longest_admin
    )
    assert created.status_code == 201, created.text


async def test_list_filters_by_flow(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    await create_site(client, auth, name="b-on", flow=True)
    await create_site(client, auth, name="a-off", flow=False)
    await create_site(client, auth, name="c-on", flow=True)
    for value, expected in (("true", ["b-on", "c-on"]), ("F", ["a-off"]), ("1", ["b-on", "c-on"])):
        response = await client.get(f"{BASE}/site", params={"isFlowEnabled": value}, headers=auth)
        assert [s["name"] for s in response.json()] == expected
        assert '"total":' + str(len(expected)) in response.headers["X-Pagination"]
    assert await site_names(client, auth) == ["a-off", "b-on", "c-on"]


async def test_bad_flow_filter_is_400(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.get(f"{BASE}/site", params={"isFlowEnabled": "yes"}, headers=auth)
    assert response.status_code == 400
    assert response.json()["message"] == "Invalid value specified for `isFlowEnabled` query param"


async def test_list_orders_by_name_or_created(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for name in ("m", "z", "a"):
        await create_site(client, auth, name=name)
    by_name_desc = await client.get(f"{BASE}/site", params={"orderBy": "NAME_DESC"}, headers=auth)
    assert [s["name"] for s in by_name_desc.json()] == ["z", "m", "a"]
    by_created = await client.get(f"{BASE}/site", params={"orderBy": "CREATED_ASC"}, headers=auth)
    assert [s["name"] for s in by_created.json()] == ["m", "z", "a"]


async def test_list_without_a_provider_is_empty_and_creates_nothing(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.get(f"{BASE}/site", headers=auth)
    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["X-Pagination"] == (
        '{"pageNumber":1,"pageSize":20,"total":0,"orderBy":null}'
    )
    # Still no provider: site-scoped calls say so.
    racks = await client.get(f"{BASE}/rack", params={"siteId": str(uuid.uuid4())}, headers=auth)
    assert (racks.status_code, racks.json()["message"]) == (400, NO_PROVIDER)


async def test_get_site_errors(
    client: httpx.AsyncClient, auth: dict[str, str], make_token: TokenFactory
) -> None:
    await create_site(client, auth)
    bad = await client.get(f"{BASE}/site/not-a-uuid", headers=auth)
    assert (bad.status_code, bad.json()["message"]) == (400, "Invalid Site ID specified in URL")
    missing = await client.get(f"{BASE}/site/{uuid.uuid4()}", headers=auth)
    assert (missing.status_code, missing.json()["message"]) == (404, "Site not found")
    other = {"Authorization": f"Bearer {make_token(org='other')}"}
    theirs = await create_site(client, other, org="other")
    foreign = await client.get(f"{BASE}/site/{theirs['id']}", headers=auth)
    assert (foreign.status_code, foreign.json()["message"]) == (403, SITE_FOREIGN)
    for method in ("PATCH", "DELETE"):
        body = {"description": "mine now"} if method == "PATCH" else None
        response = await client.request(
            method, f"{BASE}/site/{theirs['id']}", json=body, headers=auth
        )
        assert response.status_code == 403
    still = await client.get(f"/v2/org/other/nico/site/{theirs['id']}", headers=other)
    assert still.json()["description"] == ""


async def test_enabling_flow_opens_the_site_for_rack_calls(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    site = await create_site(client, auth, flow=False)
    params = {"siteId": site["id"]}
    assert (await client.get(f"{BASE}/rack", params=params, headers=auth)).status_code == 412
    patched = await client.patch(
        f"{BASE}/site/{site['id']}", json={"capabilities": {"flow": True}}, headers=auth
    )
    assert patched.status_code == 200
    assert patched.json()["capabilities"] == {"flow": True}
    assert patched.json()["name"] == site["name"]
    assert (await client.get(f"{BASE}/rack", params=params, headers=auth)).status_code == 200
    disabled = await client.patch(
        f"{BASE}/site/{site['id']}", json={"capabilities": {"flow": False}}, headers=auth
    )
    assert disabled.json()["capabilities"] == {"flow": False}
    assert (await client.get(f"{BASE}/rack", params=params, headers=auth)).status_code == 412


async def test_update_site_name_and_description(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    site = await create_site(client, auth, name="old")
    await create_site(client, auth, name="taken")
    renamed = await client.patch(
        f"{BASE}/site/{site['id']}", json={"name": "new", "description": "d"}, headers=auth
    )
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["description"]) == ("new", "d")
    assert renamed.json()["capabilities"] == site["capabilities"]
    clash = await client.patch(f"{BASE}/site/{site['id']}", json={"name": "taken"}, headers=auth)
    assert clash.status_code == 409
    assert await site_names(client, auth) == ["new", "taken"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"name": ""}, "name"),
        ({"infrastructureProviderId": str(uuid.uuid4())}, "infrastructureProviderId"),
        ({"capabilities": {"flow": "sometimes"}}, "capabilities.flow"),
    ],
)
async def test_bad_update_is_400_and_changes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    site = await create_site(client, auth, name="keep")
    response = await client.patch(f"{BASE}/site/{site['id']}", json=body, headers=auth)
    assert response.status_code == 400
    assert field in response.json()["data"]
    after = await client.get(f"{BASE}/site/{site['id']}", headers=auth)
    assert after.json() == site


async def test_delete_site_needs_it_empty(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    site = await create_site(client, auth)
    rack = await create_nvl72_rack(client, auth, site["id"])
    refused = await client.delete(f"{BASE}/site/{site['id']}", headers=auth)
    assert refused.status_code == 409
    assert "1 rack" in refused.json()["message"]
    assert (await client.get(f"{BASE}/site/{site['id']}", headers=auth)).status_code == 200
    gone = await client.delete(
        f"{BASE}/rack/{rack['id']}", params={"siteId": site["id"]}, headers=auth
    )
    assert gone.status_code == 204
    deleted = await client.delete(f"{BASE}/site/{site['id']}", headers=auth)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await client.get(f"{BASE}/site/{site['id']}", headers=auth)).status_code == 404
    assert await site_names(client, auth) == []


def ca_certificate_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "BMC lab CA")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


async def test_redfish_settings_are_stored_and_patched_field_by_field(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    pem = ca_certificate_pem()
    created = await client.post(
        f"{BASE}/site",
        json={
            "name": "lab",
            "redfish": {
                "verifyTls": False,
                "caBundle": pem,
                "firmwareCatalog": {
                    "nvswitch": {"1.4.2": "https://fw.example/nvls-1.4.2.fwpkg"},
                    "*": {"1.0.0": "tftp://10.0.0.9/any.bin"},
                },
            },
        },
        headers=auth,
    )
    assert created.status_code == 201, created.text
    redfish = created.json()["redfish"]
    assert redfish["verifyTls"] is False
    assert redfish["caBundle"] == pem
    assert redfish["firmwareCatalog"] == {
        "NVLSwitch": {"1.4.2": "https://fw.example/nvls-1.4.2.fwpkg"},
        "*": {"1.0.0": "tftp://10.0.0.9/any.bin"},
    }
    site_id = created.json()["id"]
    patched = await client.patch(
        f"{BASE}/site/{site_id}", json={"redfish": {"verifyTls": None}}, headers=auth
    )
    assert patched.status_code == 200
    assert patched.json()["redfish"] == {**redfish, "verifyTls": None}


@pytest.mark.parametrize(
    "uri",
    [
        "https://user:pw@fw.example/x.bin",
        "ftp://:pw@fw.example/x.bin",
        "scp://root@10.0.0.9/x.bin",
    ],
)
async def test_firmware_image_urls_with_credentials_are_refused_on_create_and_update(
    client: httpx.AsyncClient, auth: dict[str, str], uri: str
) -> None:
    """Credentials in an image URL would be stored and shown back in every Site answer."""
    catalog = {"Compute": {"2.1.0": "https://fw.example/ok.bin", "2.2.0": uri}}
    expected = {
        "redfish.firmwareCatalog": "Compute.2.2.0: must not carry credentials "
        "(a user or user:password before @): the catalog is shown in every Site answer; "
        "serve the image from a URL that needs none"
    }
    created = await client.post(
        f"{BASE}/site",
        json={"name": "lab", "redfish": {"firmwareCatalog": catalog}},
        headers=auth,
    )
    assert created.status_code == 400, created.text
    assert created.json()["data"] == expected
    assert "Compute.2.2.0: must not carry credentials" in created.json()["message"]
    assert await site_names(client, auth) == []
    site = await create_site(client, auth, name="lab")
    patched = await client.patch(
        f"{BASE}/site/{site['id']}", json={"redfish": {"firmwareCatalog": catalog}}, headers=auth
    )
    assert patched.status_code == 400, patched.text
    assert patched.json()["data"] == expected
    after = await client.get(f"{BASE}/site/{site['id']}", headers=auth)
    assert after.json() == site
    assert "pw@" not in after.text and "root@" not in after.text


@pytest.mark.parametrize(
    ("redfish", "message"),
    [
        ({"caBundle": "not a certificate"}, "PEM"),
        (
            {"caBundle": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
            "PEM",
        ),
        ({"firmwareCatalog": {"GPU": {"1.0": "https://fw.example/x"}}}, "GPU"),
        ({"firmwareCatalog": {"Compute": {"1.0": "/local/file.bin"}}}, "image URL"),
        ({"firmwareCatalog": {"Compute": "https://fw.example/x"}}, ""),
        ({"verifyTls": "sometimes"}, ""),
    ],
)
async def test_bad_redfish_settings_are_400_naming_the_field(
    client: httpx.AsyncClient, auth: dict[str, str], redfish: dict[str, Any], message: str
) -> None:
    site = await create_site(client, auth, name="lab")
    response = await client.patch(
        f"{BASE}/site/{site['id']}", json={"redfish": redfish}, headers=auth
    )
    assert response.status_code == 400
    field = "redfish." + next(iter(redfish))
    assert any(key.startswith(field) for key in response.json()["data"]), response.json()
    assert message in response.json()["message"]
    after = await client.get(f"{BASE}/site/{site['id']}", headers=auth)
    assert after.json() == site
