"""Bearer JWT verification: an OIDC issuer's JWKS, or the local dev key.

Messages follow upstream's authentication middleware so clients see familiar text;
every failure says which check failed and never echoes the token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import jwt

from nico.auth.principal import Principal
from nico.config import Settings
from nico.errors import Forbidden, Unauthorized

DEV_ISSUER = "nico-dev"
DEV_ALGORITHM = "HS256"

MISSING_HEADER = "Request is missing authorization header"
BAD_HEADER = "Invalid Authorization header format"
UNPARSEABLE = "Error parsing the token claims"
INVALID_TOKEN = "Invalid authorization token in request"
EXPIRED = "Authorization token in request has expired"
BAD_AUDIENCE = "Token audience does not match issuer configuration"
NO_ROLES = "User does not have any roles assigned"


def bearer_token(header: str | None) -> str:
    """Extract the token from an `Authorization: Bearer ...` header."""
    if header is None or not header.strip():
        raise Unauthorized(MISSING_HEADER)
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(BAD_HEADER)
    return token.strip()


def mint_dev_token(
    dev_key: str, org: str, roles: list[str], *, ttl_seconds: int = 3600, subject: str = "dev"
) -> str:
    """A token signed with the dev key, roles carried the Keycloak way (`org:ROLE`)."""
    now = int(time.time())
    claims = {
        "iss": DEV_ISSUER,
        "sub": subject,
        "iat": now,
        "exp": now + ttl_seconds,
        "realm_access": {"roles": [f"{org.lower()}:{r}" for r in roles]},
    }
    return jwt.encode(claims, dev_key, algorithm=DEV_ALGORITHM)


class TokenVerifier:
    """Verifies bearer tokens and turns their claims into a `Principal`."""

    def __init__(self, settings: Settings, dev_key: str | None) -> None:
        self.settings = settings
        self.dev_key = dev_key
        self._jwks: jwt.PyJWKClient | None = (
            jwt.PyJWKClient(settings.auth_jwks_url, cache_keys=True, lifespan=300)
            if settings.auth_jwks_url
            else None
        )

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthorized(UNPARSEABLE) from exc
        issuer = unverified.get("iss")
        if issuer == DEV_ISSUER and self.dev_key and header.get("alg") == DEV_ALGORITHM:
            claims = self._decode(token, self.dev_key, [DEV_ALGORITHM], DEV_ISSUER, None)
        elif self._jwks is not None:
            if self.settings.auth_issuer and issuer != self.settings.auth_issuer:
                raise Unauthorized(f"{INVALID_TOKEN}: unknown issuer")
            try:
                signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
            except jwt.PyJWKClientError as exc:
                raise Unauthorized(f"{INVALID_TOKEN}: signing key not found") from exc
            algorithm = header.get("alg", "RS256")
            if algorithm == "none" or algorithm.startswith("HS"):
                raise Unauthorized(f"{INVALID_TOKEN}: unsupported algorithm {algorithm}")
            claims = self._decode(
                token,
                signing_key.key,
                [algorithm],
                self.settings.auth_issuer,
                self.settings.auth_audience,
            )
        else:
            raise Unauthorized(f"{INVALID_TOKEN}: unknown issuer")
        return self._principal(claims)

    def _decode(
        self,
        token: str,
        key: Any,
        algorithms: list[str],
        issuer: str | None,
        audience: str | None,
    ) -> dict[str, Any]:
        options: jwt.types.Options = {"require": ["exp"], "verify_aud": audience is not None}
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=algorithms, issuer=issuer, audience=audience, options=options
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized(EXPIRED) from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthorized(BAD_AUDIENCE) from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthorized(f"{INVALID_TOKEN}: unknown issuer") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthorized(f"{INVALID_TOKEN}: signature verification failed") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"{INVALID_TOKEN}: missing claim {exc.claim}") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(UNPARSEABLE) from exc
        return claims

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        raw = _claim_at(claims, self.settings.auth_roles_claim)
        entries = raw.split() if isinstance(raw, str) else raw
        org_roles: dict[str, set[str]] = {}
        if isinstance(entries, list):
            for entry in entries:
                if isinstance(entry, str) and ":" in entry:
                    org, _, role = entry.partition(":")
                    if org and role:
                        org_roles.setdefault(org.lower(), set()).add(role)
        if not org_roles:
            raise Forbidden(NO_ROLES)
        return Principal(
            subject=str(claims.get("sub", "")),
            org_roles={org: frozenset(roles) for org, roles in org_roles.items()},
        )


def _claim_at(claims: Mapping[str, Any], path: str) -> Any:
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node
