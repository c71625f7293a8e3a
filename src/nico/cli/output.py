"""How client commands print: a table for people by default, `-o json|yaml` for scripts
(the API's own bodies, every page of a list)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


OutputOption = Annotated[
    Format,
    typer.Option("--output", "-o", help="table (default), json or yaml.", case_sensitive=False),
]

# A column: its header and how to get its text from an item.
Column = tuple[str, Callable[[dict[str, Any]], Any]]


def field(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda item: item.get(name)


def dump(data: Any, fmt: Format) -> None:
    """The data as JSON or YAML on stdout."""
    if fmt is Format.YAML:
        import yaml

        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")


def text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def table(items: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    """A plain table (no colours off a terminal, never wrapped mid-id)."""
    from rich.console import Console
    from rich.table import Table

    out = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for header, _ in columns:
        out.add_column(header, no_wrap=True)
    for item in items:
        out.add_row(*(text(get(item)) for _, get in columns))
    # One row a line, never folded mid-id (ids get copied): a long row is the terminal's
    # to wrap, as with `ps` or `kubectl`.
    Console(width=100_000).print(out)


def emit(items: Sequence[dict[str, Any]], columns: Sequence[Column], fmt: Format) -> None:
    if fmt is Format.TABLE:
        table(items, columns)
    else:
        dump(list(items), fmt)


def details(item: dict[str, Any], rows: Sequence[Column], fmt: Format) -> None:
    """One resource: `key: value` lines, or the body as JSON/YAML."""
    if fmt is not Format.TABLE:
        dump(item, fmt)
        return
    width = max(len(header) for header, _ in rows)
    for header, get in rows:
        typer.echo(f"{header + ':':<{width + 1}} {text(get(item))}")
