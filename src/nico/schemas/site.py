"""Site wire models: `capabilities.flow` gates every NICo Flow call on the site."""

from __future__ import annotations

import uuid

from pydantic import Field, field_validator, model_validator

from nico.schemas.common import RequestModel, ResponseModel, UtcTimestamp

NAME_MAX = 256


def _clean_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


class SiteCapabilities(ResponseModel):
    flow: bool = Field(False, description="Whether NICo Flow manages the site's racks.")


class SiteCapabilitiesInput(RequestModel):
    flow: bool | None = Field(None, description="Enable or disable NICo Flow on the site.")


class SiteCreateRequest(RequestModel):
    name: str = Field(..., max_length=NAME_MAX, description="Unique within the provider.")
    description: str = Field("", max_length=4096)
    capabilities: SiteCapabilitiesInput | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _clean_name(value)


class SiteUpdateRequest(RequestModel):
    """Fields left out stay unchanged; at least one must be given."""

    name: str | None = Field(None, max_length=NAME_MAX)
    description: str | None = Field(None, max_length=4096)
    capabilities: SiteCapabilitiesInput | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _clean_name(value)

    @model_validator(mode="after")
    def _not_empty(self) -> SiteUpdateRequest:
        if self.name is None and self.description is None and self.capabilities is None:
            raise ValueError("at least one of name, description, capabilities must be given")
        return self


class Site(ResponseModel):
    id: uuid.UUID
    name: str
    description: str
    infrastructure_provider_id: uuid.UUID
    capabilities: SiteCapabilities
    created: UtcTimestamp
    updated: UtcTimestamp
