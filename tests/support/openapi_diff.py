"""Structural diff of a seed document's components and operations against ours.

Compares what a generated client is built from: types, formats, enums, nullability,
references, item types, property names, required lists and parameter schemas (bounds,
defaults, required). Descriptions and titles are prose and are not compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
SEEDS = ("000_d2449f1917dfb267.txt", "004_362c069b7f1e0e7a.txt")
_COMPARED = ("type", "format", "enum", "minimum", "maximum", "default", "const")


def seed_document(name: str) -> dict[str, Any]:
    """The OpenAPI document embedded in a seed page."""
    text = (CONTRACTS / name).read_text()
    start = text.index("openapi: 3.1.0")
    end = text.index("```\n\n## Examples", start)
    document: dict[str, Any] = yaml.safe_load(text[start:end])
    return document


def shape(schema: dict[str, Any]) -> dict[str, Any]:
    """The compared parts of a schema, with nullability spelled one way (`nullable`):
    `anyOf: [X, {type: null}]`, `oneOf` of the same, and `type: [X, "null"]` are all X
    plus `nullable: true`."""
    schema = dict(schema)
    nullable = False
    for key in ("anyOf", "oneOf"):
        choices = schema.get(key)
        if isinstance(choices, list) and {"type": "null"} in choices:
            rest = [c for c in choices if c != {"type": "null"}]
            nullable = True
            schema.pop(key)
            if len(rest) == 1:
                schema = {**schema, **rest[0]}
            else:
                schema[key] = rest
    kind = schema.get("type")
    if isinstance(kind, list) and "null" in kind:
        nullable = True
        others = [k for k in kind if k != "null"]
        schema["type"] = others[0] if len(others) == 1 else others
    out: dict[str, Any] = {k: schema[k] for k in _COMPARED if k in schema}
    if nullable:
        out["nullable"] = True
    if "$ref" in schema:
        out["$ref"] = schema["$ref"].rsplit("/", 1)[-1]
    if "items" in schema:
        out["items"] = shape(schema["items"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            out[key] = [shape(c) for c in schema[key]]
    return out


def component_diff(name: str, seed: dict[str, Any], ours: dict[str, Any] | None) -> list[str]:
    """One line per difference of component `name` (empty: the same for a client)."""
    if ours is None:
        return [f"{name}: missing"]
    found: list[str] = []
    top_seed, top_ours = shape(seed), shape(ours)
    if top_seed != top_ours:
        found.append(f"{name}: {top_ours} != seed {top_seed}")
    seed_props = seed.get("properties") or {}
    our_props = ours.get("properties") or {}
    for prop in sorted(set(seed_props) | set(our_props)):
        where = f"{name}.{prop}"
        if prop not in our_props:
            found.append(f"{where}: missing")
        elif prop not in seed_props:
            found.append(f"{where}: not in the seed")
        elif shape(seed_props[prop]) != shape(our_props[prop]):
            found.append(f"{where}: {shape(our_props[prop])} != seed {shape(seed_props[prop])}")
    seed_required = sorted(seed.get("required") or [])
    our_required = sorted(ours.get("required") or [])
    if seed_required != our_required:
        found.append(f"{name}.required: {our_required} != seed {seed_required}")
    return found


def operation_diff(where: str, seed: dict[str, Any], ours: dict[str, Any] | None) -> list[str]:
    """operationId, parameters (by name: in, required, schema) and response schemas."""
    if ours is None:
        return [f"{where}: missing"]
    found: list[str] = []
    our_id, seed_id = ours.get("operationId"), seed.get("operationId")
    if our_id != seed_id:
        found.append(f"{where}.operationId: {our_id} != seed {seed_id}")
    seed_params = {p["name"]: p for p in seed.get("parameters", []) if p["in"] != "header"}
    our_params = {p["name"]: p for p in ours.get("parameters", []) if p["in"] != "header"}
    for name in sorted(set(seed_params) | set(our_params)):
        at = f"{where}.parameters.{name}"
        if name not in our_params:
            found.append(f"{at}: missing")
            continue
        if name not in seed_params:
            found.append(f"{at}: not in the seed")
            continue
        a, b = seed_params[name], our_params[name]
        if a["in"] != b["in"] or bool(a.get("required")) != bool(b.get("required")):
            found.append(f"{at}: in {b['in']} required {b.get('required')} != seed {a}")
        if shape(a["schema"]) != shape(b["schema"]):
            found.append(f"{at}.schema: {shape(b['schema'])} != seed {shape(a['schema'])}")
    for code, response in seed.get("responses", {}).items():
        ours_response = ours.get("responses", {}).get(code)
        if ours_response is None:
            found.append(f"{where}.responses.{code}: missing")
            continue
        a = response.get("content", {}).get("application/json", {}).get("schema", {})
        b = ours_response.get("content", {}).get("application/json", {}).get("schema", {})
        if shape(a) != shape(b):
            found.append(f"{where}.responses.{code}: {shape(b)} != seed {shape(a)}")
    return found


def document_diff(seed: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """Every difference of the seed's components and operations in our document."""
    found: list[str] = []
    our_schemas = ours.get("components", {}).get("schemas", {})
    for name, schema in seed.get("components", {}).get("schemas", {}).items():
        found += component_diff(name, schema, our_schemas.get(name))
    for path, operations in seed.get("paths", {}).items():
        local = path.removeprefix("/v2")
        our_path = ours.get("paths", {}).get(path) or ours.get("paths", {}).get(local) or {}
        for method, operation in operations.items():
            found += operation_diff(f"{method.upper()} {path}", operation, our_path.get(method))
    return found
