"""The batcher that turns concurrent per-tray database calls into one statement: each
caller still gets its own answer, a failed batch reaches every caller, and a cancelled
caller never leaves work it asked for running behind its back."""

from __future__ import annotations

import asyncio

import pytest

from nico.store.batching import Batcher


class Recorder:
    """A batch function that records the batches it ran."""

    def __init__(self, hold: asyncio.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self.finished: list[list[str]] = []
        self.hold = hold

    async def __call__(self, keys: list[str]) -> dict[str, str | BaseException]:
        self.batches.append(list(keys))
        if self.hold is not None:
            await self.hold.wait()
        self.finished.append(list(keys))
        return {k: (ValueError(f"no {k}") if k.startswith("bad") else k.upper()) for k in keys}


async def test_calls_made_together_run_as_one_batch_with_their_own_answers() -> None:
    run = Recorder()
    batcher: Batcher[str, str] = Batcher(run)
    answers = await asyncio.gather(
        *(batcher(k) for k in ("a", "b", "bad-c", "a")), return_exceptions=True
    )
    assert answers[0] == "A" and answers[1] == "B" and answers[3] == "A"
    assert isinstance(answers[2], ValueError) and str(answers[2]) == "no bad-c"
    assert run.batches == [["a", "b", "bad-c"]]


async def test_calls_arriving_while_a_batch_runs_form_the_next_one() -> None:
    hold = asyncio.Event()
    run = Recorder(hold)
    batcher: Batcher[str, str] = Batcher(run)
    first = asyncio.create_task(batcher("a"))
    await asyncio.sleep(0.01)
    later = [asyncio.create_task(batcher(k)) for k in ("b", "c")]
    await asyncio.sleep(0.01)
    assert run.batches == [["a"]]  # one batch at a time
    hold.set()
    assert await first == "A" and [await t for t in later] == ["B", "C"]
    assert run.batches == [["a"], ["b", "c"]]


async def test_a_failed_batch_reaches_every_caller_and_the_next_call_runs_again() -> None:
    calls = 0

    async def flaky(keys: list[str]) -> dict[str, str | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database down")
        return {k: k for k in keys}

    batcher: Batcher[str, str] = Batcher(flaky)
    answers = await asyncio.gather(batcher("a"), batcher("b"), return_exceptions=True)
    assert all(isinstance(a, ConnectionError) for a in answers)
    assert await batcher("a") == "a"


async def test_a_caller_cancelled_before_its_batch_started_is_left_out() -> None:
    hold = asyncio.Event()
    run = Recorder(hold)
    batcher: Batcher[str, str] = Batcher(run)
    busy = asyncio.create_task(batcher("w"))  # keeps the next calls waiting
    await asyncio.sleep(0.01)
    doomed = asyncio.create_task(batcher("x"))
    kept = asyncio.create_task(batcher("y"))
    await asyncio.sleep(0.01)
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    hold.set()
    assert await busy == "W" and await kept == "Y"
    assert run.batches == [["w"], ["y"]]


async def test_a_caller_cancelled_mid_batch_returns_only_once_the_batch_ended() -> None:
    hold = asyncio.Event()
    run = Recorder(hold)
    batcher: Batcher[str, str] = Batcher(run)
    task = asyncio.create_task(batcher("x"))
    await asyncio.sleep(0.01)
    assert run.batches == [["x"]] and not run.finished
    task.cancel()
    await asyncio.sleep(0.01)
    assert not task.done()  # still waiting for the work it asked for
    hold.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert run.finished == [["x"]]


async def test_large_bursts_are_split_into_bounded_batches() -> None:
    run = Recorder()
    batcher: Batcher[str, str] = Batcher(run, max_batch=3, concurrency=2)
    keys = [f"k{i}" for i in range(7)]
    assert await asyncio.gather(*(batcher(k) for k in keys)) == [k.upper() for k in keys]
    assert [len(b) for b in run.batches] == [3, 3, 1]


async def test_a_cancelled_caller_leaves_another_caller_of_the_same_key_its_answer() -> None:
    hold = asyncio.Event()
    run = Recorder(hold)
    batcher: Batcher[str, str] = Batcher(run)
    busy = asyncio.create_task(batcher("w"))
    await asyncio.sleep(0.01)
    doomed = asyncio.create_task(batcher("x"))
    sharing = asyncio.create_task(batcher("x"))
    await asyncio.sleep(0.01)
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    hold.set()
    assert await busy == "W" and await sharing == "X"
    assert run.batches == [["w"], ["x"]]
