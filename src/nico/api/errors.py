"""The one place every error becomes `{"source":"nico","message":...,"data":...}`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from nico.api.paging import PAGING_NUMBERS, PAGING_UNPARSEABLE
from nico.errors import NicoError

log = logging.getLogger("nico.api")

NOT_FOUND_PATH = "The requested path was not found"
METHOD_NOT_ALLOWED = "The requested method is not allowed for this path"
UNEXPECTED = "An unexpected error occurred while processing the request"
# Upstream's words: a value of the wrong type cannot be parsed; a parsed one can be invalid.
PARSE_FAILED = "Failed to parse request data"
VALIDATE_FAILED = "Failed to validate request data"


def error_body(message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"source": "nico", "message": message, "data": data}


def error_response(status: int, message: str, data: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=error_body(message, data))


def field_path(loc: Sequence[str | int]) -> str:
    """`("steps", 2, "mainOperation")` -> `steps[2].mainOperation`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# Our words for pydantic's error types (pydantic's own text for anything else).
_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "uuid_parsing": "must be a valid UUID",
    "uuid_type": "must be a valid UUID",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "string_type": "must be a string",
}
_NOT_AN_OBJECT = frozenset({"model_type", "model_attributes_type", "dict_type"})


def field_problem(error: Mapping[str, Any]) -> tuple[str, str]:
    """(field path, message) for one request validation error: the one wording every
    400 uses, whether the route names its own summary or not."""
    loc = list(error.get("loc", ()))
    kind = str(error.get("type", ""))
    path = field_path(loc[1:]) or (str(loc[0]) if loc else "body")
    message = _MESSAGES.get(kind) or str(error.get("msg", "is invalid"))
    if loc == ["body"] and kind in _NOT_AN_OBJECT:
        message = "must be a JSON object sent with Content-Type: application/json"
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return path, message


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """Name the field of each problem; query and body problems read differently."""
    errors = list(exc.errors())
    data: dict[str, str] = {}
    query_missing: list[str] = []
    for error in errors:
        if error.get("type") == "json_invalid":
            return error_response(400, f"{PARSE_FAILED}: body is not valid JSON")
        path, message = field_problem(error)
        loc = list(error.get("loc", ()))
        if loc[:1] and loc[0] in ("query", "path", "header") and error.get("type") == "missing":
            query_missing.append(path)
        data.setdefault(path, message)
    if (
        data
        and all(e.get("loc", ())[:1] == ("query",) for e in errors)
        and set(data) <= set(PAGING_NUMBERS)
    ):
        return error_response(400, PAGING_UNPARSEABLE, data)
    if query_missing and len(data) == len(query_missing):
        first = query_missing[0]
        return error_response(400, f"{first} query parameter is required", data)
    if errors and all(next(iter(e.get("loc", ("body",)))) == "body" for e in errors):
        summary = VALIDATE_FAILED
    else:
        summary = PARSE_FAILED
    detail = "; ".join(f"{k}: {v}" for k, v in data.items())
    return error_response(400, f"{summary}: {detail}" if detail else summary, data)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NicoError)
    async def _nico(_: Request, exc: NicoError) -> JSONResponse:
        return error_response(exc.status_code, exc.message, exc.data)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(404, NOT_FOUND_PATH)
        if exc.status_code == 405:
            return error_response(405, METHOD_NOT_ALLOWED)
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, UNEXPECTED)
