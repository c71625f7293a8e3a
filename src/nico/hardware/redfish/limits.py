"""One request cap per BMC for the whole process (NICO_BMC_CONCURRENCY).

BMCs fall over when many collectors hit them at once, so every client that talks to
the same `host:port` — power, firmware, polls, whichever task — shares one semaphore.
asyncio primitives belong to one event loop, so the registry is kept per loop (the
worker runs one loop; tests may run several).
"""

from __future__ import annotations

import asyncio
import weakref

_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def bmc_limiter(bmc: str, limit: int) -> asyncio.Semaphore:
    """The shared semaphore for `bmc` (`host:port`); the first caller's limit wins."""
    loop = asyncio.get_running_loop()
    per_loop = _limiters.setdefault(loop, {})
    limiter = per_loop.get(bmc)
    if limiter is None:
        limiter = per_loop[bmc] = asyncio.Semaphore(max(1, limit))
    return limiter
