"""Schemathesis over every operation of /openapi.json against the API on real HTTP: no
5xx, and every response matches the published schema. Bounded and deterministic (a
fixed number of cases per operation, derandomized), so a failure reproduces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from nico.auth.tokens import mint_dev_token
from nico.config import Settings
from tests.conftest import DEV_KEY
from tests.support.live_api import LiveApi, live_api

CASES_PER_OPERATION = 8


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, secret_key: str) -> Iterator[LiveApi]:
    data = Path(tmp_path_factory.mktemp("schemathesis"))
    with live_api(
        Settings(
            data_dir=data,
            auth_dev_key=DEV_KEY,
            secret_key=secret_key,
            sim_latency=0.0,
            seed_demo=True,
        )
    ) as served:
        yield served


def fuzz_operation(operation: Any, api: LiveApi, token: str) -> int:
    """Up to CASES_PER_OPERATION generated cases of one operation, each called and
    checked; how many were sent."""
    sent = 0

    @given(case=operation.as_strategy())
    @settings(
        max_examples=CASES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        nonlocal sent
        sent += 1
        # The demo org and site, so cases get past the guards into the handlers.
        if "org" in (case.path_parameters or {}):
            case.path_parameters["org"] = "demo"
        if isinstance(case.query, dict) and "siteId" in case.query:
            case.query["siteId"] = str(api.site_id)
        if isinstance(case.body, dict) and "siteId" in case.body:
            case.body["siteId"] = str(api.site_id)
        case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"},
            checks=[not_a_server_error, response_schema_conformance],
        )

    run()
    return sent


def test_no_server_error_and_responses_match_the_schema(api: LiveApi) -> None:
    """Every operation; the failures of all of them are reported together."""
    schema = schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")
    token = mint_dev_token(DEV_KEY, "demo", ["PROVIDER_ADMIN"], ttl_seconds=3600)
    failures: dict[str, str] = {}
    sent: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            sent[operation.label] = fuzz_operation(operation, api, token)
        except Exception as exc:
            failures[operation.label] = str(exc)[:2000]
    assert failures == {}
    assert len(sent) == len(failures) + len(sent) >= 40
    assert sum(sent.values()) >= 200, sent
