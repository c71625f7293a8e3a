"""`nico task watch ID…` (and every operation's `--wait`): follow tasks live until each one
ends, as a person at a terminal wants to see them: stages and their steps, a progress bar,
counts per component type, and every failure named the moment the report shows it.

Off a terminal (a script, a pipe) the same view is printed once, when the tasks end. The
exit code is the outcome: 0 every task Succeeded, 1 any Failed, 2 any Terminated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nico.cli.http import get_one

if TYPE_CHECKING:
    import httpx

FINISHED = ("Succeeded", "Failed", "Terminated")
POLL_SECONDS = 1.0
STATUS_STYLE = {
    "Succeeded": "green",
    "completed": "green",
    "Failed": "red",
    "failed": "red",
    "Terminated": "magenta",
    "Running": "cyan",
    "running": "cyan",
    "Waiting": "yellow",
    "skipped": "dim",
}


def outcome(statuses: list[str]) -> int:
    """The exit code for these final statuses."""
    if "Failed" in statuses:
        return 1
    if "Terminated" in statuses:
        return 2
    return 0 if all(s == "Succeeded" for s in statuses) else 1


def counts(task: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    """Per component type: (completed, failed, total) over every step of the report."""
    out: dict[str, tuple[int, int, int]] = {}
    for stage in (task.get("report") or {}).get("stages", []):
        for step in stage.get("steps", []):
            kind = str(step.get("componentType"))
            done, failed, total = out.get(kind, (0, 0, 0))
            out[kind] = (
                done + int(step.get("completedComponents") or 0),
                failed + int(step.get("failedComponents") or 0),
                total + int(step.get("totalComponents") or 0),
            )
    return out


def failures(task: dict[str, Any]) -> list[str]:
    """Every failure the report names so far, stage by stage."""
    found: list[str] = []
    for stage in (task.get("report") or {}).get("stages", []):
        for step in stage.get("steps", []):
            if step.get("error"):
                found.append(
                    f"stage {stage.get('number')} {step.get('componentType')}: {step['error']}"
                )
        if stage.get("error") and not any(s.get("error") for s in stage.get("steps", [])):
            found.append(f"stage {stage.get('number')}: {stage['error']}")
    return found


@dataclass
class Watched:
    """What the view knows of one task, and which failures it has already announced."""

    task_id: str
    body: dict[str, Any] = field(default_factory=dict)
    announced: set[str] = field(default_factory=set)

    @property
    def status(self) -> str:
        return str(self.body.get("status", "…"))

    @property
    def done(self) -> bool:
        return self.status in FINISHED


def _styled(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def render(tasks: list[Watched]) -> Any:
    """The live view of every watched task."""
    from rich.console import Group
    from rich.markup import escape
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    for watched in tasks:
        body = watched.body
        per_type = counts(body)
        completed = sum(c[0] for c in per_type.values())
        failed = sum(c[1] for c in per_type.values())
        total = sum(c[2] for c in per_type.values())
        parts.append(
            Text.from_markup(
                f"[bold]Task {watched.task_id}[/bold]  {_styled(watched.status)}  "
                f"{escape(str(body.get('description', '')))}"
            )
        )
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=max(total, 1), completed=completed + failed, width=40),
            Text(f"{completed}/{total} components done" + (f", {failed} failed" if failed else "")),
        )
        parts.append(bar)
        parts.append(
            Text(
                "  ".join(
                    f"{kind} {c[0]}/{c[2]}" + (f" ({c[1]} failed)" if c[1] else "")
                    for kind, c in per_type.items()
                )
                or "no report yet"
            )
        )
        stages = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        for header in ("STAGE", "STEP", "STATUS", "DONE", "FAILED", "TOTAL"):
            stages.add_column(header)
        for stage in (body.get("report") or {}).get("stages", []):
            for index, step in enumerate(stage.get("steps", [])):
                stages.add_row(
                    f"{stage.get('number')} {_styled(str(stage.get('status')))}"
                    if index == 0
                    else "",
                    str(step.get("componentType")),
                    _styled(str(step.get("status"))),
                    str(step.get("completedComponents", 0)),
                    str(step.get("failedComponents", 0)),
                    str(step.get("totalComponents", 0)),
                )
        parts.append(stages)
        if watched.done and body.get("message") not in (None, "", watched.status):
            parts.append(Text(f"{watched.status}: {body['message']}"))
        parts.append(Text(""))
    return Group(*parts)


async def poll(client: httpx.AsyncClient, path: str, site_id: str) -> dict[str, Any]:
    body: dict[str, Any] = await get_one(client, path, {"siteId": site_id})
    return body


async def watch(
    client: httpx.AsyncClient,
    base: str,
    site_id: str,
    task_ids: list[str],
    *,
    interval: float = POLL_SECONDS,
) -> int:
    """Follow the tasks until every one has ended; returns the exit code."""
    import asyncio

    from rich.console import Console
    from rich.live import Live
    from rich.markup import escape

    console = Console()
    tasks = [Watched(task_id) for task_id in task_ids]
    with Live(render(tasks), console=console, auto_refresh=False, transient=False) as live:
        while True:
            for watched in tasks:
                if watched.done:
                    continue
                watched.body = await poll(client, f"{base}/task/{watched.task_id}", site_id)
                for failure in failures(watched.body):
                    if failure not in watched.announced:
                        watched.announced.add(failure)
                        live.console.print(
                            f"[red]✗ failed[/red] task {watched.task_id[:8]} {escape(failure)}"
                        )
            live.update(render(tasks), refresh=True)
            if all(w.done for w in tasks):
                break
            await asyncio.sleep(interval)
    return outcome([w.status for w in tasks])
