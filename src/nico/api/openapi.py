"""OpenAPI that tells the truth: NICo error bodies (never FastAPI's 422), bearer auth."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMAS: dict[str, Any] = {
    "NiCoApiErrorSource": {
        "type": "string",
        "enum": ["nico"],
        "description": "Source of the error.",
        "title": "NiCoApiErrorSource",
    },
    "NiCoApiErrorData": {
        "type": "object",
        "properties": {},
        "description": "Additional data about the error",
        "title": "NiCoApiErrorData",
    },
    "NICoAPIError": {
        "type": "object",
        "properties": {
            "source": {"$ref": "#/components/schemas/NiCoApiErrorSource"},
            "message": {"type": "string", "description": "Message describing the error"},
            "data": {
                "oneOf": [{"$ref": "#/components/schemas/NiCoApiErrorData"}, {"type": "null"}],
                "description": "Additional data about the error",
            },
        },
        "description": "Describes the error response from NVIDIA Infra Controller REST API",
        "title": "NICoAPIError",
    },
}

ERROR_DESCRIPTIONS: dict[str, str] = {
    "400": "Error response when request data cannot be validated",
    "401": "Error response when the bearer token is missing or invalid",
    "403": "Error response when user is not authorized to call an endpoint or "
    "retrieve/modify objects",
    "404": "Error response when requested object is not found",
    "409": "Error response when the request conflicts with the current state",
    "412": "Error response when the Site does not have NICo Flow enabled",
    "500": "Error response when an unexpected error occurs",
}
MUTATING = {"post", "put", "patch", "delete"}


def _error_response(code: str) -> dict[str, Any]:
    return {
        "description": ERROR_DESCRIPTIONS[code],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NICoAPIError"}}},
    }


# Seed operationIds (and names for the two routes that serve one handler twice); every
# other operation is its handler's name in kebab-case (`list_rules` -> `list-rules`).
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("get", "/tray/{id}/task"): "get-tray-tasks",
    ("get", "/task/rule/{id}"): "get-rule",
    ("get", "/rack/{id}/task"): "get-rack-tasks",
    ("get", "/rack/task/{id}"): "get-rack-task",
    ("post", "/rack/task/{id}/cancel"): "cancel-rack-task",
    ("get", "/task/{id}"): "get-task",
    ("post", "/task/{id}/cancel"): "cancel-task",
}


def _operation_ids(spec: dict[str, Any], prefix: str) -> None:
    """Stable, readable operationIds, so a client generated from this document names the
    seed operations as one generated from the seeds does (`get-tray-tasks`, `get-rule`).
    FastAPI's own id is the handler's name followed by the path and method
    (`fastapi.routing.generate_unique_id`); the name is what is kept."""
    for path, operations in spec.get("paths", {}).items():
        local = path.removeprefix(prefix)
        for method, operation in operations.items():
            suffix = re.sub(r"\W", "_", path) + "_" + method
            name = str(operation.get("operationId", "")).removesuffix(suffix)
            default = name.replace("_", "-")
            operation["operationId"] = OPERATION_IDS.get((method, local), default)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with 422 replaced by the NICo error responses each route gives."""
    spec = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    _operation_ids(spec, app.state.services.settings.api_prefix())
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update(ERROR_SCHEMAS)
    for schema in schemas.values():
        drop_null_defaults(schema)
    components["securitySchemes"] = {
        "JWTBearerToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "Bearer JWT with roles `org:ROLE`; `nico token` mints a dev token.",
        }
    }
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            codes = ["400", "401", "403", "404", "412", "500"]
            if method in MUTATING:
                codes.append("409")
            for code in codes:
                responses.setdefault(code, _error_response(code))
            if path.startswith("/v2/org/"):
                operation["security"] = [{"JWTBearerToken": []}]
            if method in ("get", "delete"):
                _site_id_required(operation)
            _uuid_path_ids(operation)
    return spec


def drop_null_defaults(schema: dict[str, Any]) -> None:
    """`default: null` on a property that is never null (one left out when unset, see
    `Omittable`): the seeds publish no default there, and null is not a value of it."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None and "anyOf" not in prop:
            del prop["default"]


def _uuid_path_ids(operation: dict[str, Any]) -> None:
    """Path ids are UUIDs (a malformed one is a 400 naming it), as the seeds declare."""
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "path" and parameter.get("name") == "id":
            parameter["schema"] = {**parameter["schema"], "format": "uuid"}


def _site_id_required(operation: dict[str, Any]) -> None:
    """A GET's or DELETE's `siteId` query is required, as the seeds document it. The
    handlers take it as optional only to answer its absence with NICo's own 400."""
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "query" and parameter.get("name") == "siteId":
            parameter["required"] = True
            schema = {"type": "string", "format": "uuid"}
            parameter["schema"] = {**schema, "title": "Siteid"}


def install_openapi(app: FastAPI) -> None:
    """Serve the corrected document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
