"""Authentication and authorization on every NICo route (read from the app's OpenAPI, so
routes added later are covered too): exact status and message for each way a caller
can be refused, in upstream's order (upstream-rest-contract §1.2-1.4)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from nico.api.access import FLOW_DISABLED, NO_PROVIDER, SITE_FOREIGN, SITE_INVALID, SITE_MISSING
from nico.api.app import create_app
from nico.auth.tokens import (
    BAD_AUDIENCE,
    BAD_HEADER,
    DEV_ISSUER,
    EXPIRED,
    INVALID_TOKEN,
    MISSING_HEADER,
    NO_ROLES,
    UNPARSEABLE,
)
from nico.config import Settings
from nico.services import Services, build_services
from tests.conftest import DEV_KEY, TokenFactory
from tests.support.inventory import create_site, nvl72_body
from tests.support.routes import NicoRoute, nico_routes

NOT_MEMBER = "Failed to validate membership for org: demo"
NOT_ADMIN = "User does not have Provider Admin role with org"
# (status, message) or (status, message, data.reason): upstream's exact text, and our
# reason for the refusal in `data`.
Expected = tuple[int, str] | tuple[int, str, str]


@pytest.fixture
def app(services: Services) -> FastAPI:
    return create_app(services)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://nico.test") as client:
        yield client


async def call(
    client: httpx.AsyncClient,
    route: NicoRoute,
    headers: dict[str, str],
    *,
    org: str = "demo",
    params: dict[str, str] | None = None,
) -> httpx.Response:
    # A JSON body on write routes: authentication must refuse before the body matters.
    body: Any = {} if route.has_body else None
    return await client.request(
        route.method, route.url(org), headers=headers, params=params, json=body
    )


async def refusals(
    client: httpx.AsyncClient,
    routes: list[NicoRoute],
    headers: dict[str, str],
    expected: Expected,
    **kwargs: Any,
) -> list[str]:
    """Routes that did not answer `expected` exactly (with the NICo error envelope)."""
    wrong: list[str] = []
    for route in routes:
        response = await call(client, route, headers, **kwargs)
        body = response.json()
        got: tuple[Any, ...] = (
            response.status_code,
            body.get("message") if isinstance(body, dict) else None,
        )
        if len(expected) == 3:
            got += ((body.get("data") or {}).get("reason"),)
        if got != expected or body.get("source") != "nico" or "data" not in body:
            wrong.append(f"{route}: {got}")
    return wrong


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def dev_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": DEV_ISSUER,
        "sub": "tester",
        "iat": now,
        "exp": now + 600,
        "realm_access": {"roles": ["demo:PROVIDER_ADMIN"]},
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def dev_token(**overrides: Any) -> str:
    return jwt.encode(dev_claims(**overrides), DEV_KEY, algorithm="HS256")


# --- 401 / 403 before anything else, on every route --------------------------------------


def header_cases(make_token: TokenFactory) -> dict[str, tuple[dict[str, str], Expected]]:
    return {
        "no header": ({}, (401, MISSING_HEADER)),
        "empty header": ({"Authorization": ""}, (401, MISSING_HEADER)),
        "basic scheme": ({"Authorization": "Basic dXNlcjpwYXNz"}, (401, BAD_HEADER)),
        "bearer without token": ({"Authorization": "Bearer"}, (401, BAD_HEADER)),
        "garbage token": (bearer("not-a-jwt"), (401, UNPARSEABLE)),
        "bad signature": (
            bearer(make_token(key="some-other-key-" + "y" * 40)),
            (401, INVALID_TOKEN, "signature verification failed"),
        ),
        "expired": (bearer(make_token(ttl=-60)), (401, EXPIRED)),
        "wrong issuer": (
            bearer(dev_token(iss="https://elsewhere.example")),
            (401, INVALID_TOKEN, "unknown issuer"),
        ),
        "no expiry": (bearer(dev_token(exp=None)), (401, INVALID_TOKEN, "missing claim exp")),
        "no roles at all": (bearer(dev_token(realm_access={"roles": []})), (403, NO_ROLES)),
        "org not in token": (bearer(make_token(org="other")), (403, NOT_MEMBER)),
        "PROVIDER_VIEWER": (bearer(make_token(roles=["PROVIDER_VIEWER"])), (403, NOT_ADMIN)),
        "TENANT_ADMIN": (bearer(make_token(roles=["TENANT_ADMIN"])), (403, NOT_ADMIN)),
    }


CASE_NAMES = [
    "no header",
    "empty header",
    "basic scheme",
    "bearer without token",
    "garbage token",
    "bad signature",
    "expired",
    "wrong issuer",
    "no expiry",
    "no roles at all",
    "org not in token",
    "PROVIDER_VIEWER",
    "TENANT_ADMIN",
]


@pytest.mark.parametrize("case", CASE_NAMES)
async def test_every_route_refuses(
    case: str, app: FastAPI, http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    headers, expected = header_cases(make_token)[case]
    # A siteId and unknown parameters must not change the answer: auth comes first.
    params = {"siteId": str(uuid.uuid4()), "bogus": "1"}
    assert await refusals(http, nico_routes(app), headers, expected, params=params) == []


def test_matrix_cases_cover_every_name(make_token: TokenFactory) -> None:
    assert sorted(header_cases(make_token)) == sorted(CASE_NAMES)


async def test_provider_admin_passes_auth_on_every_route(
    app: FastAPI, http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    """The control: the same requests with a good token get past 401/403."""
    routes = nico_routes(app)
    for role in ("PROVIDER_ADMIN", "NICO_PROVIDER_ADMIN", "FORGE_PROVIDER_ADMIN"):
        headers = bearer(make_token(roles=[role]))
        for route in routes:
            response = await call(http, route, headers)
            assert response.status_code not in (401, 403), f"{role} {route}: {response.text}"


async def test_org_in_path_is_case_insensitive(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await http.get("/v2/org/DEMO/nico/infrastructure-provider/current", headers=auth)
    assert response.status_code == 200
    assert response.json()["org"] == "demo"


async def test_roles_in_another_org_do_not_count(
    http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    token = dev_token(realm_access={"roles": ["demo:TENANT_ADMIN", "other:PROVIDER_ADMIN"]})
    response = await http.get("/v2/org/demo/nico/site", headers=bearer(token))
    assert (response.status_code, response.json()["message"]) == (403, NOT_ADMIN)


# --- the provider-site guard on every site-scoped route ---------------------------------


@pytest.fixture
async def sites(
    http: httpx.AsyncClient, auth: dict[str, str], make_token: TokenFactory
) -> dict[str, str]:
    """Site ids: own Flow-enabled, own Flow-disabled, and another org's."""
    enabled = await create_site(http, auth, name="enabled")
    disabled = await create_site(http, auth, name="disabled", flow=False)
    other = await create_site(http, bearer(make_token(org="other")), org="other", name="theirs")
    return {"enabled": enabled["id"], "disabled": disabled["id"], "other": other["id"]}


def guarded(app: FastAPI) -> list[NicoRoute]:
    """Routes that take `siteId` in the query and no body (the guard runs on the query)."""
    routes = [r for r in nico_routes(app) if r.site_scoped_by_query and not r.has_body]
    assert any(r.template.endswith("/tray") for r in routes)
    return routes


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        (None, (400, "siteId query parameter is required")),
        ("not-a-uuid", (400, SITE_INVALID)),
        ("unknown", (400, SITE_MISSING)),
        ("other", (403, SITE_FOREIGN)),
        ("disabled", (412, FLOW_DISABLED)),
    ],
)
async def test_site_guard_on_every_site_scoped_route(
    site: str | None,
    expected: Expected,
    app: FastAPI,
    http: httpx.AsyncClient,
    auth: dict[str, str],
    sites: dict[str, str],
) -> None:
    site_id = {"unknown": str(uuid.uuid4()), "not-a-uuid": "not-a-uuid", None: None}.get(
        site, sites.get(site or "")
    )
    params = {} if site_id is None else {"siteId": site_id}
    assert await refusals(http, guarded(app), auth, expected, params=params) == []


async def test_org_without_provider_is_400_on_site_scoped_routes(
    app: FastAPI, http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    headers = bearer(make_token(org="fresh"))
    params = {"siteId": str(uuid.uuid4())}
    wrong = await refusals(
        http, guarded(app), headers, (400, NO_PROVIDER), org="fresh", params=params
    )
    assert wrong == []


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        (None, (400, "siteId is required")),
        ("other", (403, SITE_FOREIGN)),
        ("disabled", (412, FLOW_DISABLED)),
    ],
)
async def test_site_guard_on_rack_import(
    site: str | None,
    expected: Expected,
    http: httpx.AsyncClient,
    auth: dict[str, str],
    sites: dict[str, str],
) -> None:
    body = nvl72_body(sites[site] if site else "")
    if site is None:
        del body["siteId"]
    response = await http.post("/v2/org/demo/nico/rack", json=body, headers=auth)
    assert (response.status_code, response.json()["message"]) == expected
    listed = await http.get(
        "/v2/org/demo/nico/rack", params={"siteId": sites["enabled"]}, headers=auth
    )
    assert listed.json() == []


# --- OIDC issuer with a JWKS endpoint on a local HTTP server ---------------------------

ISSUER = "https://keycloak.example/realms/nico"
AUDIENCE = "nico-api"
KID = "test-key-1"
KID_WITHOUT_ALG = "test-key-2"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    keys = [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}, {**jwk, "kid": KID_WITHOUT_ALG}]
    document = json.dumps({"keys": keys}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/realms/nico/certs"
    finally:
        server.shutdown()
        server.server_close()


@asynccontextmanager
async def oidc_app(
    data_dir: Path, secret_key: str, jwks_url: str, dev_key: str | None = None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The API trusting the OIDC issuer at `jwks_url` (and dev tokens only with `dev_key`)."""
    settings = Settings(
        data_dir=data_dir,
        secret_key=secret_key,
        auth_dev_key=dev_key,
        auth_jwks_url=jwks_url,
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        seed_demo=False,
    )
    services = build_services(settings, create_keys=dev_key is not None)
    await services.db.migrate()
    app = create_app(services)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://nico.test") as client:
            yield app, client
    finally:
        await services.db.dispose()


@pytest.fixture
async def oidc_http(
    tmp_path: Path, secret_key: str, jwks_url: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    # No dev key at all: only the issuer's tokens can get in.
    async with oidc_app(tmp_path / "oidc", secret_key, jwks_url) as app_and_client:
        yield app_and_client


def oidc_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": now,
        "exp": now + 600,
        "realm_access": {"roles": ["demo:PROVIDER_ADMIN"]},
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def oidc_token(
    key: rsa.RSAPrivateKey, *, kid: str = KID, algorithm: str = "RS256", **overrides: Any
) -> str:
    return jwt.encode(oidc_claims(**overrides), key, algorithm=algorithm, headers={"kid": kid})


async def test_oidc_token_from_jwks_is_accepted(
    oidc_http: tuple[FastAPI, httpx.AsyncClient], signing_key: rsa.RSAPrivateKey
) -> None:
    _, client = oidc_http
    headers = bearer(oidc_token(signing_key))
    response = await client.get(
        "/v2/org/demo/nico/infrastructure-provider/current", headers=headers
    )
    assert response.status_code == 200
    assert response.json()["org"] == "demo"


async def test_a_jwk_without_alg_takes_any_asymmetric_algorithm_of_its_key(
    oidc_http: tuple[FastAPI, httpx.AsyncClient], signing_key: rsa.RSAPrivateKey
) -> None:
    _, client = oidc_http
    for algorithm in ("RS256", "PS256", "RS512"):
        token = oidc_token(signing_key, kid=KID_WITHOUT_ALG, algorithm=algorithm)
        response = await client.get(
            "/v2/org/demo/nico/infrastructure-provider/current", headers=bearer(token)
        )
        assert response.status_code == 200, (algorithm, response.text)


async def test_an_explicit_dev_key_works_next_to_oidc(
    tmp_path: Path, secret_key: str, jwks_url: str, signing_key: rsa.RSAPrivateKey
) -> None:
    async with oidc_app(tmp_path / "both", secret_key, jwks_url, DEV_KEY) as (_, client):
        for token in (dev_token(), oidc_token(signing_key)):
            response = await client.get(
                "/v2/org/demo/nico/infrastructure-provider/current", headers=bearer(token)
            )
            assert response.status_code == 200, response.text


def oidc_cases(key: rsa.RSAPrivateKey) -> dict[str, tuple[str, Expected]]:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "audience mismatch": (oidc_token(key, aud="someone-else"), (401, BAD_AUDIENCE)),
        "wrong issuer": (
            oidc_token(key, iss="https://evil.example"),
            (401, INVALID_TOKEN, "unknown issuer"),
        ),
        "no issuer": (oidc_token(key, iss=None), (401, INVALID_TOKEN, "unknown issuer")),
        "expired": (oidc_token(key, exp=int(time.time()) - 60), (401, EXPIRED)),
        "unknown key id": (
            oidc_token(key, kid="rotated-away"),
            (401, INVALID_TOKEN, "signing key not found"),
        ),
        "signed by another key": (
            oidc_token(stranger),
            (401, INVALID_TOKEN, "signature verification failed"),
        ),
        "another algorithm than the key declares": (
            oidc_token(key, algorithm="RS512"),
            (401, INVALID_TOKEN, "algorithm RS512 is not the signing key's RS256"),
        ),
        "unsigned": (
            jwt.encode(oidc_claims(), "", algorithm="none", headers={"kid": KID}),
            (401, INVALID_TOKEN, "unsupported algorithm none"),
        ),
        "HMAC with the public key id": (
            jwt.encode(
                {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600},
                "guessable-secret-" + "z" * 32,
                algorithm="HS256",
                headers={"kid": KID},
            ),
            (401, INVALID_TOKEN, "unsupported algorithm HS256"),
        ),
        "HMAC with a key id whose JWK declares no alg": (
            jwt.encode(
                {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600},
                "guessable-secret-" + "z" * 32,
                algorithm="HS256",
                headers={"kid": KID_WITHOUT_ALG},
            ),
            (401, INVALID_TOKEN, "unsupported algorithm HS256"),
        ),
        "dev token while no dev key is configured": (
            dev_token(),
            (401, INVALID_TOKEN, "unknown issuer"),
        ),
        "viewer role": (
            oidc_token(key, realm_access={"roles": ["demo:PROVIDER_VIEWER"]}),
            (403, NOT_ADMIN),
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "audience mismatch",
        "wrong issuer",
        "no issuer",
        "expired",
        "unknown key id",
        "signed by another key",
        "another algorithm than the key declares",
        "unsigned",
        "HMAC with the public key id",
        "HMAC with a key id whose JWK declares no alg",
        "dev token while no dev key is configured",
        "viewer role",
    ],
)
async def test_oidc_refusals_on_every_route(
    case: str, oidc_http: tuple[FastAPI, httpx.AsyncClient], signing_key: rsa.RSAPrivateKey
) -> None:
    app, client = oidc_http
    token, expected = oidc_cases(signing_key)[case]
    assert await refusals(client, nico_routes(app), bearer(token), expected) == []


async def test_the_site_guard_runs_after_request_parsing(
    http: httpx.AsyncClient, auth: dict[str, str], sites: dict[str, str]
) -> None:
    """What docs/architecture.md says: the role is checked before validation, the site's
    owner and Flow flag after it."""
    for site in ("other", "disabled"):
        body = {"siteId": sites[site], "state": "sideways", "all": True}
        response = await http.patch("/v2/org/demo/nico/rack/power", json=body, headers=auth)
        assert response.status_code == 400, response.text
        assert "state" in response.json()["data"]
    viewer = bearer(dev_token(realm_access={"roles": ["demo:PROVIDER_VIEWER"]}))
    body = {"siteId": sites["enabled"], "state": "sideways", "all": True}
    response = await http.patch("/v2/org/demo/nico/rack/power", json=body, headers=viewer)
    assert (response.status_code, response.json()["message"]) == (403, NOT_ADMIN)


async def test_an_unreachable_identity_provider_is_503_not_a_bad_token(
    tmp_path: Path,
    secret_key: str,
    signing_key: rsa.RSAPrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: the IdP is down
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}/realms/nico/certs"
    async with oidc_app(tmp_path / "idp-down", secret_key, down) as (_, client):
        response = await client.get(
            "/v2/org/demo/nico/infrastructure-provider/current",
            headers=bearer(oidc_token(signing_key)),
        )
    assert response.status_code == 503
    assert response.json()["message"].startswith("Identity provider unreachable")
    assert "cannot fetch signing keys from NICO_AUTH_JWKS_URL" in caplog.text
