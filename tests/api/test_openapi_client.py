"""A Python client generated from our /openapi.json (openapi-python-client, in the
test-only venv `make .venv-codegen/.installed` builds) calls the two seed operations,
`get-tray-tasks` and `get-rule`, against the API on real HTTP and reads the answers
into its typed models."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nico.auth.tokens import mint_dev_token
from nico.config import Settings
from tests.conftest import DEV_KEY
from tests.support.live_api import LiveApi, live_api

ROOT = Path(__file__).resolve().parents[2]
CODEGEN = ROOT / ".venv-codegen" / "bin"
CONFIG = "post_hooks: []\npackage_name_override: nico_client\n"

# Runs in the codegen venv, where the generated package's dependencies are.
CALLER = """
import json, sys, uuid
from nico_client import AuthenticatedClient
from nico_client.api.rule import get_rule
from nico_client.api.task import get_tray_tasks
from nico_client.models import OperationRule, Task

base, token, site, tray, rule = sys.argv[1:6]
client = AuthenticatedClient(base_url=base, token=token)
tasks = get_tray_tasks.sync(
    "demo", uuid.UUID(tray), client=client, site_id=uuid.UUID(site), include_report=True
)
fetched = get_rule.sync("demo", uuid.UUID(rule), client=client, site_id=uuid.UUID(site))
assert isinstance(fetched, OperationRule), fetched
assert all(isinstance(t, Task) for t in tasks), tasks
step = fetched.rule_definition.steps[0]
print(json.dumps({
    "tasks": [{"id": str(t.id), "status": t.status.value} for t in tasks],
    "rule": {
        "id": str(fetched.id),
        "name": fetched.name,
        "operationType": fetched.operation_type.value,
        "version": fetched.rule_definition.version.value,
        "firstAction": step.main_operation.name.value,
        "created": fetched.created.isoformat(),
    },
}))
"""


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, secret_key: str) -> Iterator[LiveApi]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("codegen-api"),
        auth_dev_key=DEV_KEY,
        secret_key=secret_key,
        sim_latency=0.0,
        seed_demo=True,
    )
    with live_api(settings) as served:
        yield served


def generate_client(spec: dict[str, Any], into: Path) -> None:
    if not (CODEGEN / "openapi-python-client").exists():
        pytest.fail("the codegen venv is missing: run `make .venv-codegen/.installed`")
    (into / "openapi.json").write_text(json.dumps(spec))
    (into / "codegen.yaml").write_text(CONFIG)
    subprocess.run(
        [
            str(CODEGEN / "openapi-python-client"),
            "generate",
            "--path",
            "openapi.json",
            "--config",
            "codegen.yaml",
            "--meta",
            "none",
            "--output-path",
            "nico_client",
        ],
        cwd=into,
        check=True,
        capture_output=True,
    )


def test_generated_client_calls_the_two_seed_operations(api: LiveApi, tmp_path: Path) -> None:
    token = mint_dev_token(DEV_KEY, "demo", ["PROVIDER_ADMIN"], ttl_seconds=3600)
    auth = {"Authorization": f"Bearer {token}"}
    base = f"{api.base_url}/v2/org/demo/nico"
    site = {"siteId": str(api.site_id)}
    with httpx.Client(headers=auth, timeout=30) as http:
        tray = http.get(f"{base}/tray", params={**site, "pageSize": 1}).json()[0]["id"]
        powered = http.patch(f"{base}/tray/{tray}/power", json={**site, "state": "on"})
        assert powered.status_code == 200, powered.text
        rule = http.get(f"{base}/task/rule", params={**site, "pageSize": 1}).json()[0]
        spec = http.get(f"{api.base_url}/openapi.json").json()
    generate_client(spec, tmp_path)
    called = subprocess.run(
        [
            str(CODEGEN / "python"),
            "-c",
            CALLER,
            api.base_url,
            token,
            *site.values(),
            tray,
            rule["id"],
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert called.returncode == 0, called.stderr
    answer = json.loads(called.stdout)
    assert answer["tasks"] == [{"id": powered.json()["taskIds"][0], "status": "Pending"}]
    assert answer["rule"]["id"] == rule["id"] and answer["rule"]["name"] == rule["name"]
    assert answer["rule"]["version"] == "v1"
    assert answer["rule"]["operationType"] == rule["operationType"]
    first = rule["ruleDefinition"]["steps"][0]["mainOperation"]["name"]
    assert answer["rule"]["firstAction"] == first
    assert answer["rule"]["created"].startswith(rule["created"].removesuffix("Z"))
