"""Stopping the background tasks a component owns.

What enters: the tasks (or None). What leaves: each cancelled and awaited to its end, its
cancellation swallowed; an exception a task had already raised is not (it is the component's
failure to report, not a stop's).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


async def stop_tasks(*tasks: asyncio.Task[None] | None) -> None:
    """Cancel every task, then wait for each (all are cancelled before any is awaited)."""
    await stop_all(tasks)


async def stop_all(tasks: Iterable[asyncio.Task[None] | None]) -> None:
    """``stop_tasks`` over an iterable."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task
