"""The packages of `nico` import in one direction only (docs/architecture.md, "Layers").

Every `import` of a `nico` module anywhere in a file counts, also one inside a function
or under TYPE_CHECKING: a lazy import is still a dependency. A module may import its own
layer or a lower one, never a higher one; the engine owns the report it writes, so
`nico.tasks` builds on `nico.engine` and never the other way round.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nico

SRC = Path(nico.__file__).parent

# Lowest first. Units are the first name under `nico` (a package or a top-level module).
LAYERS: tuple[frozenset[str], ...] = (
    frozenset(
        {
            "domain",
            "text",
            "errors",
            "ids",
            "config",
            "private_files",
            "keyfiles",
            "secretbox",
            "logs",
            "metrics",
            "schemas.common",
        }
    ),
    frozenset({"store"}),
    frozenset({"hardware", "rules", "auth"}),
    frozenset({"services"}),
    frozenset({"engine"}),
    frozenset({"tasks"}),
    # Wire models and routes know each other (request bodies name API helpers).
    frozenset({"schemas", "api", "provisioning", "seed"}),
    frozenset({"runner", "cli", "__main__"}),
)


# Modules placed on their own, below their package: pydantic building blocks with no
# nico imports, shared by the rule model (rules) and the wire models (schemas).
SPLIT_MODULES = ("schemas.common",)


def _unit(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 and ".".join(parts[1:3]) in SPLIT_MODULES:
        return ".".join(parts[1:3])
    return parts[1] if len(parts) > 1 else "nico"


def _layer(unit: str) -> int:
    for index, members in enumerate(LAYERS):
        if unit in members:
            return index
    raise AssertionError(f"nico.{unit} is in no layer: add it to LAYERS and the docs")


def imports() -> list[tuple[str, str]]:
    """(importing module, imported module) for every nico import under src/nico."""
    found: list[tuple[str, str]] = []
    for path in sorted(SRC.rglob("*.py")):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [(module, name) for name in names if name.startswith("nico.")]
    return found


def test_every_package_is_in_a_layer() -> None:
    units = {_unit(m) for pair in imports() for m in pair} - {"nico"}
    for unit in units:
        _layer(unit)


def test_no_package_imports_a_higher_layer() -> None:
    upward = [
        f"{source} imports {target}"
        for source, target in imports()
        if _unit(source) != "nico" and _layer(_unit(target)) > _layer(_unit(source))
    ]
    assert upward == []


def test_the_engine_imports_nothing_of_the_task_manager() -> None:
    assert not [t for s, t in imports() if _unit(s) == "engine" and _unit(t) == "tasks"]
