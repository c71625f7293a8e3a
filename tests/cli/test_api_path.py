"""The CLI talks to the same API path the server serves, NICO_API_NAME included."""

import pytest

from nico.cli.http import base_path


def test_cli_paths_follow_nico_api_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NICO_API_NAME", raising=False)
    assert base_path("demo") == "/v2/org/demo/nico"
    monkeypatch.setenv("NICO_API_NAME", "forge")
    assert base_path("demo") == "/v2/org/demo/forge"
