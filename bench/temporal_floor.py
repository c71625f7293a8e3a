"""A bare Temporal workflow with the task workflow's shape (stages in sequence, one child
per step, trays in parallel, N no-op activities per tray, begin/finish activities): the
floor `bench/engine.py` compares the real engine against. Kept import-light because the
workflow sandbox re-imports this module."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow


@dataclass
class FloorStep:
    trays: int
    activities_per_tray: int


@dataclass
class FloorInput:
    stages: list[list[FloorStep]]


@activity.defn(name="bench_noop")
async def noop() -> None:
    return None


@workflow.defn(name="BenchFloorStep")
class FloorStepWorkflow:
    @workflow.run
    async def run(self, step: FloorStep) -> None:
        async def tray() -> None:
            for _ in range(step.activities_per_tray):
                await workflow.execute_activity(
                    "bench_noop", start_to_close_timeout=timedelta(seconds=30)
                )

        await asyncio.gather(*(tray() for _ in range(step.trays)))


@workflow.defn(name="BenchFloorTask")
class FloorTaskWorkflow:
    @workflow.run
    async def run(self, data: FloorInput) -> None:
        timeout = timedelta(seconds=30)
        await workflow.execute_activity("bench_noop", start_to_close_timeout=timeout)
        for index, stage in enumerate(data.stages):
            children = [
                await workflow.start_child_workflow(
                    FloorStepWorkflow.run, step, id=f"{workflow.info().workflow_id}-{index}-{n}"
                )
                for n, step in enumerate(stage)
            ]
            await asyncio.gather(*children)
        await workflow.execute_activity("bench_noop", start_to_close_timeout=timeout)
