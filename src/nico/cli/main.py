"""`nico` command line: serve, api, worker, token, db, rule, sim."""

from __future__ import annotations

import os
import sys

import typer

from nico.cli import db as db_cli
from nico.cli import rules as rules_cli
from nico.cli import serve as serve_cli
from nico.cli import sim as sim_cli
from nico.cli import token as token_cli

app = typer.Typer(
    name="nico",
    help="nico-flow: NICo REST API for racks, trays, tasks and operation rules on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
serve_cli.register(app)
token_cli.register(app)
app.add_typer(db_cli.app, name="db")
app.add_typer(rules_cli.app, name="rule")
app.add_typer(sim_cli.app, name="sim")


def main() -> None:
    """Entry point. Exits with os._exit after flushing: the Temporal SDK can abort during
    interpreter teardown (sdk-python issue 300)."""
    code = 0
    try:
        app(standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        code = 130
    except KeyboardInterrupt:
        code = 130
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except Exception as exc:  # click usage errors and friends
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            code = exc.exit_code
        else:
            raise
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
