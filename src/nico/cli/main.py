"""`nico` command line: the client commands (site, rack, tray, task, rule, sim, token)
and the server commands (serve, api, worker, db).

Client commands start in a fraction of a second because this module imports only them:
the server commands are placeholders that import the server (FastAPI, SQLAlchemy,
Temporal) when one of them actually runs. Failures print one line and exit non-zero:
2 for usage errors (with the usage), 1 for everything else; `--debug` shows tracebacks.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from nico.cli import inventory as inventory_cli
from nico.cli import operations as _operations  # noqa: F401 (registers rack/tray operations)
from nico.cli import rules as rules_cli
from nico.cli import sim as sim_cli
from nico.cli import status as _status  # noqa: F401 (registers rack/tray status, history)
from nico.cli import tasks as tasks_cli
from nico.cli import token as token_cli

app = typer.Typer(
    name="nico",
    help="nico-flow: NICo REST API for racks, trays, tasks and operation rules on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show a traceback when a command fails.")
    ] = False,
) -> None:
    """nico-flow: NICo REST API for racks, trays, tasks and operation rules on Temporal.

    Client commands read NICO_API_URL (default http://NICO_HOST:NICO_PORT), NICO_TOKEN
    and NICO_ORG."""


app.add_typer(inventory_cli.site_app, name="site")
app.add_typer(inventory_cli.rack_app, name="rack")
app.add_typer(inventory_cli.tray_app, name="tray")
app.add_typer(tasks_cli.task_app, name="task")
app.add_typer(rules_cli.app, name="rule")
app.add_typer(sim_cli.app, name="sim")
token_cli.register(app)

# Server commands: name -> the help line `nico --help` shows without importing them.
SERVER_COMMANDS = {
    "serve": "Run everything on embedded defaults: database, Temporal, worker, API.",
    "api": "Run only the API (production: several replicas).",
    "worker": "Run only a Temporal worker (plus the queue sweep and the reconciler).",
    "db": "Database schema commands (db upgrade).",
}


def server_command(name: str) -> Any:
    """The real server command, built only when it runs."""
    if name == "db":
        from nico.cli import db as db_cli

        return typer.main.get_group(db_cli.app)  # a group even with one command: `db upgrade`
    from nico.cli import serve as serve_cli

    server = typer.Typer()
    serve_cli.register(server)
    group = typer.main.get_group(server)
    return group.commands[name]


def _placeholder(name: str, help_line: str) -> None:
    @app.command(
        name,
        help=help_line,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def command(ctx: typer.Context) -> None:
        code = server_command(name).main(
            args=ctx.args, prog_name=f"nico {name}", standalone_mode=False
        )
        if isinstance(code, int) and code:
            raise typer.Exit(code)


for _name, _help in SERVER_COMMANDS.items():
    _placeholder(_name, _help)


def main() -> None:
    """Entry point. Exits with os._exit after flushing: the Temporal SDK can abort during
    interpreter teardown (sdk-python issue 300)."""
    debug = "--debug" in sys.argv[1:]
    code = 0
    try:
        app()  # usage errors: one line plus the usage, exit 2
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(f"error: {exc.code}", file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        if debug:
            raise
        print(f"error: {exc or type(exc).__name__} (--debug shows the traceback)", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
