"""`Idempotency-Key`: a retried operation request returns the task ids of the first one.

The key is scoped to the org. Its row is written in the same transaction as the tasks it
produced, under the racks' locks, and (org, key) is unique, so two concurrent requests
with one key cannot both start tasks. A request that failed stored nothing and may be
retried freely. Reusing a key for a different request is a 409.

The fingerprint hashes the request as validated (normalised), so a new spelling of a
field changes it. Keys stored before a normalisation changed still replay: the claim
also carries the request's fingerprints as earlier versions computed them
(`legacy_bodies`), and a stored key matching one of those is the same request.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from nico.errors import BadRequest, Conflict
from nico.store.models import IdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
KEY_REUSED = (
    "Idempotency-Key was already used for a different request; use a new key for a new request"
)


@dataclass(frozen=True)
class IdempotencyClaim:
    """A caller's key and the fingerprint of the request it came with."""

    org: str
    key: str
    fingerprint: str
    # The same request as earlier versions fingerprinted it (keys stored before).
    legacy_fingerprints: tuple[str, ...] = ()

    def matches(self, stored: str) -> bool:
        return stored == self.fingerprint or stored in self.legacy_fingerprints


def claim_for(
    org: str, key: str | None, method: str, path: str, body: dict[str, Any]
) -> IdempotencyClaim | None:
    """The claim of a request, or None when no key was sent; 400 for a malformed key."""
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise BadRequest(
            f"Invalid {HEADER} header",
            {HEADER: f"must be 1 to {MAX_KEY_LENGTH} printable characters"},
        )
    fingerprint = _fingerprint(method, path, body)
    legacy = tuple(
        f for f in (_fingerprint(method, path, b) for b in legacy_bodies(body)) if f != fingerprint
    )
    return IdempotencyClaim(org.lower(), key, fingerprint, legacy)


def legacy_bodies(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The validated body as earlier versions validated it. Until power states became
    PascalCase (ff92e47, 2026-12-03) `state` was stored lower case (`forceoff`)."""
    state = body.get("state")
    if isinstance(state, str) and state != state.lower():
        return [body | {"state": state.lower()}]
    return []


def _fingerprint(method: str, path: str, body: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"method": method.upper(), "path": path, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def replay(session: AsyncSession, claim: IdempotencyClaim) -> list[uuid.UUID] | None:
    """The task ids stored for the key, None if unused; 409 if it came with another body."""
    result = await session.execute(
        select(IdempotencyKey).where(
            IdempotencyKey.org == claim.org, IdempotencyKey.key == claim.key
        )
    )
    row = result.scalar_one_or_none()
    if row is None:
        return None
    if not claim.matches(row.fingerprint):
        raise Conflict(KEY_REUSED, {HEADER: claim.key})
    return [uuid.UUID(str(i)) for i in row.task_ids]


async def remember(
    session: AsyncSession, claim: IdempotencyClaim, task_ids: list[uuid.UUID]
) -> None:
    session.add(
        IdempotencyKey(
            org=claim.org,
            key=claim.key,
            fingerprint=claim.fingerprint,
            task_ids=[str(i) for i in task_ids],
        )
    )
    await session.flush()


# --- retention (`nico.tasks.key_retention`) ----------------------------------------------


@dataclass(frozen=True)
class StoredKey:
    """What retention reads of a key: where it sits in the walk and the tasks it names."""

    created: datetime
    id: uuid.UUID
    task_ids: tuple[str, ...]


def oldest_statement(
    *, before: datetime, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> Select[datetime, uuid.UUID, list[Any]]:
    """Up to `limit` keys stored before `before`, oldest first, from just past `after`:
    one range of the (created, id) index."""
    query = select(IdempotencyKey.created, IdempotencyKey.id, IdempotencyKey.task_ids).where(
        IdempotencyKey.created < before
    )
    if after is not None:
        query = query.where(tuple_(IdempotencyKey.created, IdempotencyKey.id) > after)
    return query.order_by(IdempotencyKey.created, IdempotencyKey.id).limit(limit)


async def oldest(
    session: AsyncSession, *, before: datetime, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[StoredKey]:
    """See `oldest_statement`."""
    rows = await session.execute(oldest_statement(before=before, after=after, limit=limit))
    return [
        StoredKey(created, key_id, tuple(str(t) for t in task_ids or ()))
        for created, key_id, task_ids in rows.all()
    ]


async def delete_keys(session: AsyncSession, ids: list[uuid.UUID]) -> None:
    await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id.in_(ids)))
