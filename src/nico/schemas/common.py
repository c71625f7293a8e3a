"""Wire-model bases: camelCase on the wire, RFC 3339 UTC timestamps, strict requests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel


def rfc3339(value: datetime) -> str:
    """`2024-04-10T14:00:00Z`: UTC, second precision, as the seeds show."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


UtcTimestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str, when_used="json")]


class ResponseModel(BaseModel):
    """Response bodies: camelCase aliases, built from attributes or dicts."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)

    def wire(self, **kwargs: Any) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, **kwargs)


class RequestModel(BaseModel):
    """Request bodies: camelCase, unknown fields refused so typos do not pass silently."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
