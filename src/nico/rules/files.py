"""Rule files (YAML or JSON) for `nico rule import` / `export`.

Loads upstream's layout unchanged (`version`, `rules:` with `operation_type:
power_control`, `operation: power_on`, `steps` in snake_case) as well as our export
(`operationType`, `operationCode`, `ruleDefinition`). Checking operations and definitions
is the server's dry run's job; a rule's own fields (name, description, isDefault), which
the dry run does not take, are checked here with the API's own check.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from nico.domain import OperationType
from nico.rules import requests as rule_requests

FILE_VERSION = "v1"

# Upstream's legacy steps have no main operation: they meant "run the operation itself".
_LEGACY_MAIN = {
    OperationType.POWER_CONTROL: "PowerControl",
    OperationType.FIRMWARE_CONTROL: "FirmwareControl",
}


class RuleFileError(ValueError):
    """The file cannot be read as a rule file (the message says where)."""


@dataclass(frozen=True)
class RuleDocument:
    """One rule of a file, in API terms; `where` names it in messages."""

    where: str
    name: Any
    description: Any
    operation_type: Any
    operation_code: Any
    rule_definition: Any
    is_default: Any  # as written; None when absent

    def create_body(self, site_id: str, *, default: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "siteId": site_id,
            "name": self.name,
            "operationType": self.operation_type,
            "operationCode": self.operation_code,
            "ruleDefinition": self.rule_definition,
            "isDefault": default or self.is_default is True,
        }
        if self.description is not None:
            body["description"] = self.description
        return body

    def field_problems(self) -> list[tuple[str, str]]:
        """What POST /task/rule would refuse in the rule's name, description or isDefault."""
        given = {"name": self.name, "description": self.description, "isDefault": self.is_default}
        problems: list[tuple[str, str]] = []
        rule_requests.check_rule_attributes(
            {key: value for key, value in given.items() if value is not None}, problems
        )
        return problems

    def validate_body(self, site_id: str) -> dict[str, Any]:
        return {
            "siteId": site_id,
            "operationType": self.operation_type,
            "operationCode": self.operation_code,
            "ruleDefinition": self.rule_definition,
        }


def parse_text(text: str, filename: str) -> Any:
    """The file's data; NaN and infinities (YAML `.nan`, `.inf`, JSON `NaN`) are refused
    by path, as the API refuses them and a request body cannot even carry them."""
    try:
        data = json.loads(text) if filename.lower().endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise RuleFileError(f"{filename}: not valid {_format(filename)}: {exc}") from None
    found: list[str] = []
    _not_finite(data, "", found)
    if found:
        raise RuleFileError(f"{filename}: " + "; ".join(found))
    return data


def _not_finite(value: Any, path: str, found: list[str]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        found.append(f"{path or 'file'}: {value} is not a finite number")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _not_finite(item, f"{path}.{key}" if path else str(key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _not_finite(item, f"{path}[{index}]", found)


def _format(filename: str) -> str:
    return "JSON" if filename.lower().endswith(".json") else "YAML"


def _first(data: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in data:
            return data[key]
    return None


def load_rules(text: str, filename: str) -> list[RuleDocument]:
    """The rules of a file: `{version, rules: [...]}`, a list of rules, or one rule."""
    data = parse_text(text, filename)
    version = FILE_VERSION
    if isinstance(data, Mapping) and "rules" in data:
        version = str(data.get("version") or FILE_VERSION)
        if version != FILE_VERSION:
            raise RuleFileError(f"{filename}: version must be {FILE_VERSION}, not {version}")
        items = data["rules"]
        prefix = "rules"
    elif isinstance(data, list):
        items, prefix = data, "rules"
    elif isinstance(data, Mapping):
        items, prefix = [data], "rule"
    else:
        raise RuleFileError(f"{filename}: expected a `rules:` list, a list of rules or one rule")
    if not isinstance(items, list) or not items:
        raise RuleFileError(f"{filename}: `rules` must be a non-empty list")
    documents = []
    for index, item in enumerate(items):
        where = f"{prefix}[{index}]" if prefix == "rules" else "rule"
        if not isinstance(item, Mapping):
            raise RuleFileError(f"{filename}: {where} must be a mapping")
        documents.append(_document(item, where, version))
    return documents


def _document(item: Mapping[str, Any], where: str, version: str) -> RuleDocument:
    operation_type = _first(item, "operationType", "operation_type")
    definition = _first(item, "ruleDefinition", "rule_definition")
    if definition is None:
        steps = _first(item, "steps")
        definition = {"version": item.get("version", version), "steps": steps}
    if isinstance(definition, Mapping):
        definition = dict(definition)
        definition.setdefault("version", version)
        definition["steps"] = _with_legacy_main(definition.get("steps"), operation_type)
    name = item.get("name")
    return RuleDocument(
        where=f"{where} ({name})" if isinstance(name, str) and name else where,
        name=name,
        description=item.get("description"),
        operation_type=operation_type,
        operation_code=_first(item, "operationCode", "operation_code", "operation"),
        rule_definition=definition,
        is_default=_first(item, "isDefault", "is_default"),
    )


def _with_legacy_main(steps: Any, operation_type: Any) -> Any:
    """Give legacy steps (no main operation) the operation's own action."""
    try:
        kind = OperationType.parse(operation_type)
    except ValueError:
        return steps
    action = _LEGACY_MAIN.get(kind)
    if action is None or not isinstance(steps, list):
        return steps
    out = []
    for step in steps:
        if isinstance(step, Mapping) and not ("mainOperation" in step or "main_operation" in step):
            step = {**step, "mainOperation": {"name": action}}
        out.append(step)
    return out


def default_conflicts(documents: list[RuleDocument], *, all_default: bool) -> list[str]:
    """Messages for (type, code) pairs that more than one rule would be the default of."""
    seen: dict[tuple[str, str], str] = {}
    problems = []
    for doc in documents:
        if not (all_default or doc.is_default is True):
            continue
        # The API's own reading (`power_control`, ` Power_On `), so spellings of one
        # operation meet; an invalid operation is the dry run's to report.
        kind, code = rule_requests.check_operation(
            doc.operation_type, doc.operation_code, [], type_path="", code_path=""
        )
        if kind is None or code is None:
            continue
        key = (kind.value, code)
        if key in seen:
            problems.append(
                f"{doc.where} and {seen[key]} would both be the default {key[0]}/{key[1]} rule"
            )
        else:
            seen[key] = doc.where
    return problems


def dump_rules(rules: Sequence[Mapping[str, Any]], filename: str | None) -> str:
    """Rules as a file `load_rules` reads back (JSON for *.json, else YAML)."""
    body = {
        "version": FILE_VERSION,
        "rules": [
            {
                "name": r["name"],
                "description": r.get("description", ""),
                "operationType": r["operationType"],
                "operationCode": r["operationCode"],
                "isDefault": bool(r.get("isDefault")),
                "ruleDefinition": r["ruleDefinition"],
            }
            for r in rules
        ],
    }
    if filename is not None and filename.lower().endswith(".json"):
        return json.dumps(body, indent=2) + "\n"
    return yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
