"""The workflow sandbox checks our workflow code: only modules proven pure skip it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nico.engine.worker import PURE_WORKFLOW_MODULES

# Packages whose __init__ is empty: importing a pure module loads its parents.
PACKAGES = {"nico", "nico.engine", "nico.hardware", "nico.rules", "nico.tasks"}
# What a passed-through module must never drag into workflow code.
IMPURE = ("sqlalchemy", "httpx", "aiosqlite", "asyncpg", "pydantic_settings")


@pytest.mark.parametrize("module", PURE_WORKFLOW_MODULES)
def test_a_passed_through_module_imports_nothing_impure(module: str) -> None:
    probe = (
        "import importlib, json, sys; "
        f"importlib.import_module({module!r}); "
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], check=True, capture_output=True, text=True
        ).stdout
    )
    ours = {m for m in loaded if m == "nico" or m.startswith("nico.")}
    assert ours <= set(PURE_WORKFLOW_MODULES) | PACKAGES, ours - set(PURE_WORKFLOW_MODULES)
    assert not [m for m in loaded if m.split(".")[0] in IMPURE]


def test_workflow_code_itself_is_not_passed_through() -> None:
    workflow_code = (
        "nico",
        "nico.engine",
        "nico.engine.workflows",
        "nico.engine.step_workflow",
        "nico.engine.actions",
    )
    for module in workflow_code:
        assert module not in PURE_WORKFLOW_MODULES


def test_a_task_run_loads_no_other_workflow_code() -> None:
    # The sandbox imports a workflow's module afresh for every run (and every replay after
    # an eviction); a task's run must not drag the legacy step workflow's actions along.
    probe = "import json, sys; import nico.engine.workflows; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], check=True, capture_output=True, text=True
        ).stdout
    )
    sandboxed = {m for m in loaded if m.startswith("nico.")} - set(PURE_WORKFLOW_MODULES)
    assert sandboxed - PACKAGES == {"nico.engine.workflows"}
