"""Infrastructure Provider wire model."""

from __future__ import annotations

import uuid

from nico.schemas.common import ResponseModel, UtcTimestamp


class InfrastructureProvider(ResponseModel):
    id: uuid.UUID
    org: str
    name: str
    created: UtcTimestamp
    updated: UtcTimestamp
