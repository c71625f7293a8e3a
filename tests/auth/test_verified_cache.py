"""A verified token is remembered briefly (its signature is not checked on every request),
but never past its `exp`, and a refused token is never remembered."""

from __future__ import annotations

import time
from datetime import datetime, tzinfo

import jwt
import pytest

from nico.auth import tokens
from nico.auth.tokens import EXPIRED, TokenVerifier, mint_dev_token
from nico.config import Settings
from nico.errors import Unauthorized

KEY = "cache-test-key-" + "y" * 40


def move_clocks(monkeypatch: pytest.MonkeyPatch, to: float) -> None:
    """Both clocks a verification reads: the cache's and PyJWT's `exp` check."""

    class Later(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Later:
            return cls.fromtimestamp(to, tz)

    monkeypatch.setattr(tokens.time, "time", lambda: to)
    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)


def verifier() -> TokenVerifier:
    return TokenVerifier(Settings(auth_dev_key=KEY), KEY)


async def test_a_remembered_token_still_expires_at_its_exp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check = verifier()
    token = mint_dev_token(KEY, "demo", ["PROVIDER_ADMIN"], ttl_seconds=5)
    first = await check.verify(token)
    assert first.is_provider_admin("demo")
    # Re-verified calls are answered from memory: the same principal object.
    assert await check.verify(token) is first

    later = time.time() + 6
    move_clocks(monkeypatch, later)
    with pytest.raises(Unauthorized) as refused:
        await check.verify(token)
    assert refused.value.message == EXPIRED


async def test_a_token_is_verified_again_after_the_memory_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check = verifier()
    token = mint_dev_token(KEY, "demo", ["PROVIDER_ADMIN"], ttl_seconds=3600)
    first = await check.verify(token)
    move_clocks(monkeypatch, time.time() + tokens.VERIFIED_TTL + 1)
    again = await check.verify(token)
    assert again == first and again is not first


async def test_a_refused_token_is_not_remembered() -> None:
    check = verifier()
    forged = mint_dev_token("another-key-" + "z" * 40, "demo", ["PROVIDER_ADMIN"])
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await check.verify(forged)
    assert len(check._verified) == 0
