"""Seed 000's Task schema, extracted from the seed file, as a jsonschema validator.

Two deviations are applied, both mandated by SPEC §6 where the seed's example and its
schema disagree: `started`/`finished` may be null, and `report.version` is the integer 1
(the example's form) as well as the string "1".
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

SEED = Path(__file__).resolve().parents[1] / "contracts" / "000_d2449f1917dfb267.txt"


def seed_text() -> str:
    return SEED.read_text()


@cache
def openapi() -> dict[str, Any]:
    match = re.search(r"```yaml\n(.*?)\n```", seed_text(), re.S)
    assert match is not None, "seed 000 has no OpenAPI block"
    spec: dict[str, Any] = yaml.safe_load(match.group(1))
    return spec


def example_response() -> list[dict[str, Any]]:
    text = seed_text()
    start = text.index("**Response**")
    match = re.search(r"```json\n(.*?)```", text[start:], re.S)
    assert match is not None
    body: list[dict[str, Any]] = json.loads(match.group(1))
    return body


@cache
def _components() -> dict[str, Any]:
    components = copy.deepcopy(openapi()["components"])
    schemas = components["schemas"]
    for name in ("started", "finished"):
        schemas["Task"]["properties"][name]["type"] = ["string", "null"]
    schemas["TaskReportV1Version"] = {"enum": ["1", 1]}
    return components


def validator(schema_name: str, *, array: bool = False) -> Draft202012Validator:
    ref = {"$ref": f"#/components/schemas/{schema_name}"}
    schema: dict[str, Any] = {
        **({"type": "array", "items": ref} if array else ref),
        "components": _components(),
    }
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def assert_valid_tasks(body: Any) -> None:
    errors = sorted(validator("Task", array=True).iter_errors(body), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def assert_valid_task(body: Any) -> None:
    errors = sorted(validator("Task").iter_errors(body), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
