"""Bearer JWT verification: an OIDC issuer's JWKS, or the local dev key.

Messages are upstream's authentication middleware text, word for word, so clients see
familiar text; `data.reason` says which check failed. Nothing echoes the token.
OIDC tokens must come from `NICO_AUTH_ISSUER` and be signed with an asymmetric
algorithm (the JWK's own `alg` when it declares one), so a public key can never be
used as an HMAC secret.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import jwt

from nico.auth.principal import Principal
from nico.config import Settings
from nico.errors import Forbidden, ServiceUnavailable, Unauthorized

DEV_ISSUER = "nico-dev"
DEV_ALGORITHM = "HS256"

MISSING_HEADER = "Request is missing authorization header"
BAD_HEADER = "Invalid Authorization header format"
UNPARSEABLE = "Error parsing the token claims"
INVALID_TOKEN = "Invalid authorization token in request"
EXPIRED = "Authorization token in request has expired"
BAD_AUDIENCE = "Token audience does not match issuer configuration"
JWKS_UNREACHABLE = (
    "Identity provider unreachable: cannot fetch its signing keys to verify the token; try again"
)
# Seconds to wait for the identity provider's JWKS document (PyJWT's default is 30).
JWKS_TIMEOUT = 10

log = logging.getLogger("nico.auth")
NO_ROLES = "User does not have any roles assigned"

# A verified token's principal is reused for this many seconds (never past the token's
# `exp`): a client sends the same token with every request, and checking its signature
# and claims again each time was a large part of a small request's CPU.
VERIFIED_TTL = 30.0
# Bound on remembered tokens (least recently used go first).
VERIFIED_MAX = 4096

# Signatures an OIDC issuer may use: public-key algorithms only (no HS*, no `none`).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def oidc_settings_problem(settings: Settings) -> str | None:
    """Why the OIDC settings cannot be used, or None when they can."""
    if settings.auth_jwks_url and not settings.auth_issuer:
        return (
            "NICO_AUTH_ISSUER is required when NICO_AUTH_JWKS_URL is set: "
            "set it to the `iss` your OIDC issuer puts in its tokens"
        )
    return None


def invalid_token(reason: str) -> Unauthorized:
    """Upstream's 401 text; the failed check goes in `data.reason`."""
    return Unauthorized(INVALID_TOKEN, {"reason": reason})


def declared_algorithm(key: jwt.PyJWK) -> str | None:
    """The JWK's own `alg`, if it has one (PyJWT otherwise guesses one from `kty`)."""
    fields = getattr(key, "_jwk_data", None)  # PyJWK keeps the raw JWK only here
    declared = fields.get("alg") if isinstance(fields, dict) else None
    return declared if isinstance(declared, str) else None


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
        problem = oidc_settings_problem(settings)
        if problem is not None:
            raise ValueError(problem)
        self.settings = settings
        self.dev_key = dev_key
        self._jwks: jwt.PyJWKClient | None = (
            jwt.PyJWKClient(
                settings.auth_jwks_url, cache_keys=True, lifespan=300, timeout=JWKS_TIMEOUT
            )
            if settings.auth_jwks_url
            else None
        )
        # token -> (principal, wall-clock time after which it must be verified again)
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        """The token's principal; 401/403 (never cached) when it does not verify."""
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None and now < hit[1]:
            self._verified.move_to_end(token)
            return hit[0]
        principal, exp = await self._verify(token)
        self._verified[token] = (principal, min(now + VERIFIED_TTL, exp))
        self._verified.move_to_end(token)
        while len(self._verified) > VERIFIED_MAX:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthorized(UNPARSEABLE) from exc
        issuer = unverified.get("iss")
        if issuer == DEV_ISSUER and self.dev_key and header.get("alg") == DEV_ALGORITHM:
            claims = self._decode(token, self.dev_key, [DEV_ALGORITHM], DEV_ISSUER, None)
        elif self._jwks is not None and issuer == self.settings.auth_issuer:
            claims = await self._decode_oidc(token, str(header.get("alg")))
        else:
            raise invalid_token("unknown issuer")
        return self._principal(claims), float(claims["exp"])

    async def _decode_oidc(self, token: str, algorithm: str) -> dict[str, Any]:
        assert self._jwks is not None
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise invalid_token(f"unsupported algorithm {algorithm}")
        try:
            signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as exc:
            # The identity provider is down, not the token bad: say so, and log it.
            log.warning("cannot fetch signing keys from NICO_AUTH_JWKS_URL: %s", exc)
            raise ServiceUnavailable(JWKS_UNREACHABLE) from exc
        except jwt.PyJWKClientError as exc:
            raise invalid_token("signing key not found") from exc
        declared = declared_algorithm(signing_key)
        if declared is not None and declared != algorithm:
            raise invalid_token(f"algorithm {algorithm} is not the signing key's {declared}")
        return self._decode(
            token,
            signing_key.key,
            [algorithm],
            self.settings.auth_issuer,
            self.settings.auth_audience,
        )

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
            raise invalid_token("unknown issuer") from exc
        except jwt.InvalidSignatureError as exc:
            raise invalid_token("signature verification failed") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise invalid_token(f"missing claim {exc.claim}") from exc
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
