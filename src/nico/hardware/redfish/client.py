"""An async Redfish client for one BMC: connection reuse, auth, TLS, retries, the BMC cap.

- Auth: a Redfish session (`X-Auth-Token`) when the service root offers one, reused
  across calls, re-created once on 401 and deleted on `aclose`; HTTP basic otherwise.
- TLS is verified by default, against the endpoint's CA bundle (PEM text) when given,
  else NICO_REDFISH_CA_BUNDLE, else the system trust store; `verify_tls=False` opts out.
- Every request holds a slot of the process-wide per-BMC cap (NICO_BMC_CONCURRENCY)
  while it is on the wire; waits between retries do not. A command's requests take the
  next free slot before status reads (`limits.commanding`).
- Only reads (GET) are retried on transport errors and 5xx. A 503 is retried for any
  method, after its `Retry-After` (bounded), since the BMC did not act on the request.
- Redirects are followed only within the BMC's own origin: a redirect elsewhere would
  carry the session token, basic credentials or a login body to another host.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import logging
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from nico.config import Settings
from nico.hardware.interface import BmcEndpoint, HardwareError
from nico.hardware.redfish.errors import error_from_response, error_from_transport
from nico.hardware.redfish.limits import bmc_limiter

log = logging.getLogger(__name__)

# httpcore's DEBUG trace prints response headers, and a session login's headers carry
# the token (X-Auth-Token): keep that trace off unless someone configured it on purpose.
if logging.getLogger("httpcore").level == logging.NOTSET:
    logging.getLogger("httpcore").setLevel(logging.INFO)

SERVICE_ROOT = "/redfish/v1/"
# Retries of a GET after a transport error or 5xx (so at most 3 attempts), with backoff.
READ_RETRIES = 2
# Calls in a row whose service-root read answered 5xx before the client settles on basic
# auth (a BMC whose root is broken but whose resources answer).
ROOT_FAILURES_BEFORE_BASIC = 3
READ_BACKOFF_SECONDS = 0.5
# Retries after 503; each wait is the BMC's Retry-After, capped.
BUSY_RETRIES = 3
MAX_RETRY_AFTER_SECONDS = 30.0
DEFAULT_BUSY_WAIT_SECONDS = 1.0
# Closing a session is best effort and must not hold up shutdown.
LOGOUT_TIMEOUT_SECONDS = 5.0


def bmc_base_url(endpoint: BmcEndpoint) -> tuple[str, str]:
    """(`https://host:port`, `host:port`) for a BMC.

    The address is a host name or IP (https is assumed) or an explicit `http://` or
    `https://` URL; `http://` exists for labs and emulators and must be asked for.
    """
    address = endpoint.address.strip()
    scheme = "https"
    port: int | None = None
    if "://" in address:
        parts = urlsplit(address)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        try:
            port = parts.port
        except ValueError:
            port = None
    elif address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    elif address.count(":") == 1:
        host, _, port_text = address.partition(":")
        port = int(port_text) if port_text.isdigit() else None
    else:
        host = address
    if scheme not in ("http", "https") or not host:
        raise HardwareError(
            f"BMC address {host or address!r} is not a host name, IP or http(s) URL",
            retryable=False,
        )
    port = endpoint.port or port or (443 if scheme == "https" else 80)
    netloc_host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{netloc_host}:{port}", f"{netloc_host}:{port}"


def tls_verification(endpoint: BmcEndpoint, settings: Settings, bmc: str) -> ssl.SSLContext | bool:
    """What httpx verifies the BMC certificate against."""
    if not endpoint.verify_tls:
        return False
    try:
        if endpoint.ca_bundle:
            return ssl.create_default_context(cadata=endpoint.ca_bundle)
        if settings.redfish_ca_bundle:
            return ssl.create_default_context(cafile=settings.redfish_ca_bundle)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise HardwareError(
            f"CA bundle for BMC {bmc} cannot be loaded: {type(exc).__name__}", retryable=False
        ) from None
    return True


def retry_after_seconds(response: httpx.Response, attempt: int) -> float:
    """The BMC's `Retry-After` (seconds or HTTP date), capped; backoff when absent."""
    value = response.headers.get("Retry-After", "").strip()
    wait: float | None = None
    if value.isdigit():
        wait = float(value)
    elif value:
        try:
            wait = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            wait = None
    if wait is None:
        wait = DEFAULT_BUSY_WAIT_SECONDS * 2 ** (attempt - 1)
    return min(max(wait, 0.0), MAX_RETRY_AFTER_SECONDS)


def _port(url: httpx.URL) -> int | None:
    return url.port or {"http": 80, "https": 443}.get(url.scheme)


class RedfishClient:
    """Requests to one BMC with one set of credentials."""

    def __init__(self, endpoint: BmcEndpoint, settings: Settings) -> None:
        self.base_url, self.bmc = bmc_base_url(endpoint)
        self._username = endpoint.username
        self._password = endpoint.password
        self._limit = settings.bmc_concurrency
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            verify=tls_verification(endpoint, settings, self.bmc),
            timeout=httpx.Timeout(settings.redfish_timeout),
            follow_redirects=True,
            headers={"Accept": "application/json", "OData-Version": "4.0"},
            event_hooks={"request": [self._refuse_other_origin]},
        )
        # None until the service root was read: "session", "basic" or "none".
        self._auth_mode: str | None = None
        self._root_failures = 0  # service-root answers of 5xx in a row
        self._sessions_uri: str | None = None
        self._token: str | None = None
        self._session_uri: str | None = None
        self._auth_lock = asyncio.Lock()
        self.logins = 0

    # --- public -----------------------------------------------------------------

    @property
    def auth_mode(self) -> str | None:
        return self._auth_mode

    async def get_json(self, path: str, *, action: str | None = None) -> dict[str, Any]:
        """GET a Redfish resource; a non-2xx answer or a non-object body is an error."""
        response = await self.request("GET", path)
        self.raise_for_status(response, action or f"GET {path}")
        return self.json_object(response, action or f"GET {path}")

    async def request(
        self, method: str, path: str, *, json: dict[str, Any] | None = None
    ) -> httpx.Response:
        """Send one request with auth, the BMC cap and the retry policy; no status check."""
        idempotent = method == "GET"
        read_attempts = busy_attempts = 0
        relogged_in = False
        while True:
            headers, token = await self._auth_headers()
            try:
                async with bmc_limiter(self.bmc, self._limit).slot():
                    response = await self._http.request(method, path, json=json, headers=headers)
            except httpx.HTTPError as exc:
                error = error_from_transport(self.bmc, exc, self._secrets())
                if idempotent and error.retryable and read_attempts < READ_RETRIES:
                    read_attempts += 1
                    await asyncio.sleep(READ_BACKOFF_SECONDS * read_attempts)
                    continue
                raise error from None
            status = response.status_code
            if status == 401 and token is not None and not relogged_in:
                relogged_in = True
                await self._relogin(token)
                continue
            if status == 503 and busy_attempts < BUSY_RETRIES:
                busy_attempts += 1
                wait = retry_after_seconds(response, busy_attempts)
                log.info(
                    "BMC %s busy (503) on %s %s; retrying in %.1fs", self.bmc, method, path, wait
                )
                await asyncio.sleep(wait)
                continue
            if idempotent and status in (500, 502, 504) and read_attempts < READ_RETRIES:
                read_attempts += 1
                await asyncio.sleep(READ_BACKOFF_SECONDS * read_attempts)
                continue
            return response

    def raise_for_status(self, response: httpx.Response, action: str) -> None:
        if response.is_success:
            return
        raise error_from_response(self.bmc, action, response, self._secrets())

    def json_object(self, response: httpx.Response, action: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise HardwareError(f"BMC {self.bmc} answered {action} with no JSON object")
        return body

    async def aclose(self) -> None:
        """Delete our Redfish session (best effort) and close the connections."""
        token, session_uri = self._token, self._session_uri
        self._token = self._session_uri = None
        if token and session_uri:
            try:
                async with bmc_limiter(self.bmc, self._limit).slot():
                    await self._http.delete(
                        session_uri,
                        headers={"X-Auth-Token": token},
                        timeout=LOGOUT_TIMEOUT_SECONDS,
                    )
            except (httpx.HTTPError, HardwareError) as exc:
                log.info("BMC %s: could not delete the Redfish session: %s", self.bmc, type(exc))
        await self._http.aclose()

    async def _refuse_other_origin(self, request: httpx.Request) -> None:
        """Runs before every request httpx sends, redirects included."""
        base = self._http.base_url
        if (request.url.scheme, request.url.host, _port(request.url)) != (
            base.scheme,
            base.host,
            _port(base),
        ):
            origin = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
            raise HardwareError(
                f"BMC {self.bmc} redirected {request.method} {request.url.path} to {origin}; "
                "redirects to another origin are not followed (credentials stay with the BMC)",
                retryable=False,
            )

    # --- auth -------------------------------------------------------------------

    def _secrets(self) -> tuple[str | None, ...]:
        # A BMC may echo the Authorization header it got: its base64 is a secret too.
        return (self._password, self._token, self._basic_credential() if self._password else None)

    def _basic_credential(self) -> str:
        pair = f"{self._username or ''}:{self._password or ''}".encode()
        return base64.b64encode(pair).decode("ascii")

    async def _auth_headers(self) -> tuple[dict[str, str], str | None]:
        """Headers for the next request, and the session token they carry (if any)."""
        if self._auth_mode is None or (self._auth_mode == "session" and self._token is None):
            async with self._auth_lock:
                if self._auth_mode is None:
                    self._auth_mode = await self._discover_auth_mode()
                if self._auth_mode == "session" and self._token is None:
                    await self._login()
        if self._auth_mode == "session" and self._token is not None:
            token = self._token
            return {"X-Auth-Token": token}, token
        if self._auth_mode == "basic":
            return {"Authorization": "Basic " + self._basic_credential()}, None
        return {}, None

    async def _discover_auth_mode(self) -> str:
        if not self._username:
            return "none"
        root = await self._unauthenticated_root()
        links = root.get("Links")
        sessions = links.get("Sessions") if isinstance(links, dict) else None
        uri = sessions.get("@odata.id") if isinstance(sessions, dict) else None
        if isinstance(uri, str) and uri:
            self._sessions_uri = uri
            return "session"
        return "basic"

    async def _unauthenticated_root(self) -> dict[str, Any]:
        """The service root, which Redfish serves without credentials."""
        for attempt in range(READ_RETRIES + 1):
            try:
                async with bmc_limiter(self.bmc, self._limit).slot():
                    response = await self._http.get(SERVICE_ROOT)
            except httpx.HTTPError as exc:
                error = error_from_transport(self.bmc, exc, self._secrets())
                if error.retryable and attempt < READ_RETRIES:
                    await asyncio.sleep(READ_BACKOFF_SECONDS * (attempt + 1))
                    continue
                raise error from None
            if response.status_code == 503 and attempt < READ_RETRIES:
                await asyncio.sleep(retry_after_seconds(response, attempt + 1))
                continue
            if response.status_code >= 500:
                # A BMC still booting or overloaded: decide nothing now (deciding "basic"
                # would cost it a PAM login per request for the life of the process) -
                # unless its root keeps failing, when basic auth is all it will give us.
                self._root_failures += 1
                if self._root_failures >= ROOT_FAILURES_BEFORE_BASIC:
                    log.warning(
                        "BMC %s service root keeps answering HTTP %s; using basic auth",
                        self.bmc,
                        response.status_code,
                    )
                    return {}
                raise error_from_response(
                    self.bmc, "the Redfish service root", response, self._secrets()
                )
            if not response.is_success:
                # Some BMCs protect even the root: fall back to basic auth.
                return {}
            try:
                body = response.json()
            except ValueError:
                return {}
            return body if isinstance(body, dict) else {}
        return {}

    async def _login(self) -> None:
        """Create a Redfish session; a BMC that cannot makes us use basic auth."""
        assert self._sessions_uri is not None
        body = {"UserName": self._username or "", "Password": self._password or ""}
        try:
            async with bmc_limiter(self.bmc, self._limit).slot():
                response = await self._http.post(self._sessions_uri, json=body)
        except httpx.HTTPError as exc:
            raise error_from_transport(self.bmc, exc, self._secrets()) from None
        self.logins += 1
        token = response.headers.get("X-Auth-Token")
        if response.status_code in (401, 403):
            error = error_from_response(
                self.bmc, "Redfish session login", response, self._secrets()
            )
            raise HardwareError(str(error), retryable=False)
        if response.status_code in (404, 405, 501) or (response.is_success and not token):
            log.info("BMC %s offers no usable Redfish sessions; using basic auth", self.bmc)
            self._auth_mode = "basic"
            return
        self.raise_for_status(response, "Redfish session login")
        self._token = token
        location = response.headers.get("Location")
        if not location:
            try:
                created = response.json()
            except ValueError:
                created = {}
            location = created.get("@odata.id") if isinstance(created, dict) else None
        self._session_uri = urlsplit(location).path if isinstance(location, str) else None

    async def _relogin(self, stale_token: str) -> None:
        """Replace a session the BMC no longer accepts (once per request)."""
        async with self._auth_lock:
            if self._token != stale_token:
                return  # another request already logged in again
            log.info("BMC %s rejected the Redfish session; logging in again", self.bmc)
            self._token = self._session_uri = None
            await self._login()
