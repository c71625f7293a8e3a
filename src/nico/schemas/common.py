"""Wire-model bases: camelCase on the wire, RFC 3339 UTC timestamps, strict requests."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetJsonSchemaHandler,
    PlainSerializer,
    SecretStr,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError


def rfc3339(value: datetime) -> str:
    """`2024-04-10T14:00:00Z`: UTC, second precision, as the seeds show. (A task list
    writes four of these per task: C's isoformat with its `+00:00` cut off is about a
    third cheaper than formatting the six fields by hand.)"""
    if value.tzinfo is not UTC:
        value = (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(UTC)
    return value.isoformat(timespec="seconds")[:-6] + "Z"


# Documented as the seeds do (`format: date-time`): the serializer alone would make it a
# bare string in the OpenAPI document.
UtcTimestamp = Annotated[
    datetime,
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


# Go's strconv.ParseBool, which upstream binds query booleans with. pydantic alone would
# also take yes/no/on/off, which upstream refuses ("activeOnly=yes" is a 400).
GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def go_bool(value: Any) -> Any:
    """A query string in Go ParseBool form as a bool; anything else fails as a bool."""
    if isinstance(value, bool):
        return value
    if value in GO_TRUE:
        return True
    if value in GO_FALSE:
        return False
    raise PydanticCustomError("bool_parsing", "must be true or false")


QueryBool = Annotated[bool, BeforeValidator(go_bool)]


# A field left out of the JSON when unset (never sent as null), published as the seeds do:
# optional and of its own type, e.g. `error: Omittable[str] = None`.
class _NotNull:
    """Publishes `X | None` as X: the value is left out when unset, never sent as null."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        choices = [c for c in schema.get("anyOf", []) if c != {"type": "null"}]
        if len(choices) == 1:
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            return {**choices[0], **rest}
        return schema


T = TypeVar("T")
# Validated as `X | None` (plain locations in error messages), published as X.
Omittable = Annotated[T | None, _NotNull()]
# RFC 3339 text kept as a string (a report's own timestamps), documented as date-time.
DateTimeText = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


def no_default(schema: dict[str, Any]) -> None:
    """`json_schema_extra` for a field whose default the seed does not publish."""
    schema.pop("default", None)


def no_required(schema: dict[str, Any]) -> None:
    """`json_schema_extra` for a response model whose seed lists no required fields
    (a client generated from ours then matches one generated from the seed)."""
    schema.pop("required", None)


def named_enum_copy(name: str, source: type[StrEnum], doc: str) -> Any:
    """`source`'s members under a seed's schema name (OpenAPI names an enum's schema
    after its class), so the wire enum can never drift from the one the code uses."""
    copy = StrEnum(name, {member.name: member.value for member in source})  # type: ignore[misc]  # functional API with computed members
    copy.__doc__ = doc
    return copy


class ResponseModel(BaseModel):
    """Response bodies: camelCase aliases, built from attributes or dicts."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)

    def wire(self, **kwargs: Any) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, **kwargs)


NUL_REFUSED = "must not contain NUL characters (\\u0000)"


def has_nul(value: object) -> bool:
    """Whether a string anywhere in `value` (lists and maps included) holds a NUL."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, SecretStr):
        return "\x00" in value.get_secret_value()
    if isinstance(value, list | tuple | set | frozenset):
        return any(has_nul(item) for item in value)
    if isinstance(value, dict):
        return any(has_nul(key) or has_nul(item) for key, item in value.items())
    return False


class RequestModel(BaseModel):
    """Request bodies: camelCase, unknown fields refused so typos do not pass silently."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """PostgreSQL cannot store a NUL in text (it answered 500), and no name needs one."""
        if has_nul(value):
            raise ValueError(NUL_REFUSED)
        return value
