"""Every NICo route of the app, read from its OpenAPI document, so tests that must cover
"every endpoint" also cover the ones added later."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi import FastAPI

PREFIX = "/v2/org/{org}/nico"
METHODS = ("get", "post", "put", "patch", "delete")
# Plausible values for path parameters that are not ids; any other one gets a fresh UUID.
PATH_SAMPLES = {"operationType": "PowerControl", "operationCode": "power_on"}


@dataclass(frozen=True)
class NicoRoute:
    method: str
    template: str
    query: frozenset[str]
    has_body: bool

    def url(self, org: str = "demo") -> str:
        """The path with `org` filled in, ids as fresh UUIDs, other parameters plausible."""
        path = self.template.replace("{org}", org)
        while "{" in path:
            start = path.index("{")
            end = path.index("}", start)
            value = PATH_SAMPLES.get(path[start + 1 : end]) or str(uuid.uuid4())
            path = path[:start] + value + path[end + 1 :]
        return path

    @property
    def site_scoped_by_query(self) -> bool:
        return "siteId" in self.query

    @property
    def paged(self) -> bool:
        return "pageSize" in self.query

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.template}"


def nico_routes(app: FastAPI) -> list[NicoRoute]:
    routes: list[NicoRoute] = []
    for template, operations in app.openapi()["paths"].items():
        if not template.startswith(PREFIX):
            continue
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            query = frozenset(
                p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"
            )
            routes.append(NicoRoute(method, template, query, "requestBody" in operation))
    assert routes, "the app has no NICo routes"
    return routes
