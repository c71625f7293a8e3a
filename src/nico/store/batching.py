"""Coalescing concurrent single-item database work into one statement per batch.

Why: a step runs its trays concurrently, and a fleet runs many steps at once; each tray
asking the database for its own row cost a session, a statement and a thread hop per
tray (most of the worker's CPU at 100 racks). A `Batcher` keeps the per-item call the
callers already make (`await batcher(key)`) and turns the calls made in the same event
loop turn (plus those arriving while a batch runs) into one call of its batch function.

Guarantees the callers rely on:
- each caller gets its own item's result or exception, exactly as if it had called alone;
  a failure of the whole batch (the database is down) reaches every caller, whose own
  retry (`nico.engine.infra.retrying`) makes the call again;
- a caller cancelled before its batch started is left out of it; a caller cancelled
  while its batch runs waits for the batch to end before the cancel reaches it, so no
  work it asked for is still in flight once it has stopped (a cancel of a step answers
  only when no call is running).
- a caller's wait for its batch is its wait on the database (`nico.store.stalls`): a
  deadline that cuts it while the batch is stalled (a lock, a pool with no connection)
  is the database's, not the hardware's; the batch itself runs outside any caller's
  scope, since it serves them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

from nico.store import stalls

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Items per call of the batch function (SQLite binds at most 32,766 parameters).
MAX_BATCH = 250


class Batcher(Generic[K, V]):
    """`await batcher(key)` -> the value `run([... key ...])` produced for that key.

    `run` gets distinct keys and returns a value or an exception per key; a key it
    leaves out raises KeyError for its caller. Items are handed to `run` in arrival
    order. At most `concurrency` batches run at once; calls arriving meanwhile wait and
    form the next batch.
    """

    def __init__(
        self,
        run: Callable[[list[K]], Awaitable[Mapping[K, V | BaseException]]],
        *,
        max_batch: int = MAX_BATCH,
        concurrency: int = 1,
    ) -> None:
        self._run = run
        self._max = max_batch
        self._slots = concurrency
        self._pending: dict[K, asyncio.Future[V]] = {}
        # Callers waiting per future (calls with the same key share one).
        self._waiting: dict[asyncio.Future[V], int] = {}
        self._scheduled = False
        self._running = 0

    async def __call__(self, key: K) -> V:
        future = self._pending.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._pending[key] = future
            self._schedule()
        self._waiting[future] = self._waiting.get(future, 0) + 1
        try:
            with stalls.waiting():
                try:
                    return await asyncio.shield(future)
                except asyncio.CancelledError:
                    if self._pending.get(key) is future:
                        # Not started: leave it out, unless another caller waits for it.
                        self._waiting[future] -= 1
                        if not self._waiting[future]:
                            del self._pending[key]
                            future.cancel()
                        raise
                    if not future.done():
                        # Its batch is running: let it end, so nothing asked for is in
                        # flight.
                        await asyncio.wait({future})
                    raise
        finally:
            if future.done():
                self._waiting.pop(future, None)

    def _schedule(self) -> None:
        if not self._scheduled and self._running < self._slots:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        while self._pending and self._running < self._slots:
            keys = list(self._pending)[: self._max]
            batch = {k: self._pending.pop(k) for k in keys}
            self._running += 1
            task = asyncio.get_running_loop().create_task(
                self._flush(batch), context=stalls.detached()
            )
            task.add_done_callback(lambda _t: None)

    async def _flush(self, batch: dict[K, asyncio.Future[V]]) -> None:
        try:
            try:
                results = await self._run(list(batch))
            except BaseException as exc:  # the whole batch failed: each caller sees it
                for future in batch.values():
                    if not future.done():
                        future.set_exception(_copy(exc))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
            for key, future in batch.items():
                if future.done():
                    continue
                if key not in results:
                    future.set_exception(KeyError(key))
                    continue
                value = results[key]
                if isinstance(value, BaseException):
                    future.set_exception(value)
                else:
                    future.set_result(value)
        finally:
            self._running -= 1
            if self._pending:
                self._schedule()


def _copy(exc: BaseException) -> BaseException:
    """The batch's exception for one caller (a CancelledError becomes a plain failure:
    the caller itself was not cancelled)."""
    if isinstance(exc, asyncio.CancelledError):
        return RuntimeError("batch cancelled")
    return exc
