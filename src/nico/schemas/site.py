"""Site wire models: `capabilities.flow` gates every NICo Flow call on the site; `redfish`
holds the TLS trust and firmware catalog the site's Redfish BMCs use (our addition)."""

from __future__ import annotations

import re
import ssl
import uuid

from pydantic import Field, StrictBool, field_validator, model_validator

from nico.domain import ComponentType
from nico.schemas.common import RequestModel, ResponseModel, UtcTimestamp

NAME_MAX = 256
CA_BUNDLE_MAX = 1_000_000
ANY_TYPE = "*"
_IMAGE_URI = re.compile(r"^(https?|ftp|sftp|scp|tftp|nfs|cifs)://\S+$", re.IGNORECASE)


IMAGE_URI_CREDENTIALS = (
    "must not carry credentials (a user or user:password before @): the catalog is shown "
    "in every Site answer; serve the image from a URL that needs none"
)


def _has_userinfo(uri: str) -> bool:
    """Whether the URL names a user or password before its host (`https://u:p@fw/x`)."""
    authority = re.split(r"[/?#]", uri.partition("://")[2], maxsplit=1)[0]
    return "@" in authority


def _clean_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


class SiteCapabilities(ResponseModel):
    flow: bool = Field(False, description="Whether NICo Flow manages the site's racks.")


class SiteCapabilitiesInput(RequestModel):
    flow: StrictBool | None = Field(None, description="Enable or disable NICo Flow on the site.")


class SiteRedfishInput(RequestModel):
    """Fields sent replace the stored ones; a field sent as null returns to the default."""

    verify_tls: StrictBool | None = Field(
        None, description="false turns BMC TLS verification off; null: NICO_REDFISH_VERIFY_TLS."
    )
    ca_bundle: str | None = Field(
        None, description="PEM CA certificates the site's BMC certificates must chain to."
    )
    firmware_catalog: dict[str, dict[str, str]] | None = Field(
        None,
        description="Component type (or `*`) -> firmware version -> image URI, e.g. "
        '{"Compute": {"2.1.0": "https://fw.example/compute-2.1.0.fwpkg"}}. The versions '
        "the site's trays may install, whatever their backend: a firmware request naming "
        "another version is refused (the simulator installs the version without fetching "
        "the image).",
    )

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) > CA_BUNDLE_MAX or "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError("must be PEM CA certificates (-----BEGIN CERTIFICATE-----)")
        try:
            ssl.create_default_context(cadata=value)
        except (ssl.SSLError, ValueError):
            raise ValueError("must be PEM CA certificates that can be loaded") from None
        return value

    @field_validator("firmware_catalog")
    @classmethod
    def _catalog(cls, value: dict[str, dict[str, str]] | None) -> dict[str, dict[str, str]] | None:
        if value is None:
            return None
        catalog: dict[str, dict[str, str]] = {}
        for key, versions in value.items():
            type_key = key if key == ANY_TYPE else ComponentType.parse(key).value
            for version, uri in versions.items():
                if not version.strip():
                    raise ValueError(f"{key}: versions must not be empty")
                if not _IMAGE_URI.match(uri.strip()):
                    raise ValueError(
                        f"{key}.{version}: must be an image URL (https://, http://, ftp://, "
                        "sftp://, scp://, tftp://, nfs://, cifs://)"
                    )
                if _has_userinfo(uri.strip()):
                    raise ValueError(f"{key}.{version}: {IMAGE_URI_CREDENTIALS}")
                catalog.setdefault(type_key, {})[version.strip()] = uri.strip()
        return catalog


class SiteRedfish(ResponseModel):
    verify_tls: bool | None = None
    ca_bundle: str | None = None
    firmware_catalog: dict[str, dict[str, str]] | None = None


class SiteCreateRequest(RequestModel):
    name: str = Field(..., max_length=NAME_MAX, description="Unique within the provider.")
    description: str = Field("", max_length=4096)
    capabilities: SiteCapabilitiesInput | None = None
    redfish: SiteRedfishInput | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _clean_name(value)


class SiteUpdateRequest(RequestModel):
    """Fields left out stay unchanged; at least one must be given."""

    name: str | None = Field(None, max_length=NAME_MAX)
    description: str | None = Field(None, max_length=4096)
    capabilities: SiteCapabilitiesInput | None = None
    redfish: SiteRedfishInput | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _clean_name(value)

    @model_validator(mode="after")
    def _not_empty(self) -> SiteUpdateRequest:
        given = (self.name, self.description, self.capabilities, self.redfish)
        if all(value is None for value in given):
            raise ValueError(
                "at least one of name, description, capabilities, redfish must be given"
            )
        return self


class Site(ResponseModel):
    id: uuid.UUID
    name: str
    description: str
    infrastructure_provider_id: uuid.UUID
    capabilities: SiteCapabilities
    redfish: SiteRedfish
    created: UtcTimestamp
    updated: UtcTimestamp
