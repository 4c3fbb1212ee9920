"""What the server served, logged off the request path for the served-vs-offline skew check.

What enters: each answer GetObservation / GetObservations / WatchObservations sends (the
assembled observation: symbol, the 15 float32 as packed, each view's event time, source and
fallback reason) and the time it was sent. What leaves: the answers, in batches, in the
project's Redis stream ``<project>:served`` (``canonical.served_log`` layout), which the
pipeline drains into the offline store in Feast's feature-logging schema
(``pipeline.served_log``) and ``pipeline skew`` compares with the offline rows of the same
instant.

The request path only appends a reference to an already-built answer to a bounded queue
(``record``: a length check and a deque append; a full queue drops the entry and counts it). A
background task writes the queue every ``flush_s`` as batches of up to 256 answers, one stream
entry (one XADD) per batch, yielding to the event loop between batches so calls keep being
served; a batch Redis refuses is dropped and counted too (the log is evidence, never a reason to
fail or slow a call). The stream is capped (approximately) at ``stream_max_len`` batches.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from canonical.served_log import Record, encode_batch
from core.clock import Clock
from core.tasks import stop_tasks
from server.observation import SerializedObservation

logger = logging.getLogger(__name__)

_BATCH = 256


class ServingLog:
    """The bounded queue and its writer (module docstring)."""

    def __init__(  # noqa: PLR0913 - the log's bounds, keyword-only
        self,
        client: aioredis.Redis | None,
        stream: bytes,
        clock: Clock,
        *,
        max_queue: int = 10_000,
        stream_max_len: int = 1_000_000,
        flush_s: float = 0.2,
        cluster: Any = None,
    ) -> None:
        self._client = client
        self._cluster = cluster
        self._stream = stream
        self._clock = clock
        self._max_queue = max_queue
        self._stream_max_len = stream_max_len
        self._flush_s = flush_s
        self._queue: collections.deque[tuple[SerializedObservation, int, bool]] = (
            collections.deque()
        )
        self.written = 0
        """Entries appended to the stream."""
        self.dropped = 0
        """Entries lost: the queue was full, or Redis refused their batch."""
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    def record(self, answer: SerializedObservation, from_cache: bool) -> None:
        """Queue one answer (the request path: O(1), never blocks, never raises)."""
        if len(self._queue) >= self._max_queue:
            self.dropped += 1
            return
        self._queue.append((answer, self._clock.wall_ns(), from_cache))

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """``run`` as a task until ``aclose``."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="served-log")

    async def aclose(self) -> None:
        """Stop the writer after one last flush (best effort, bounded by 1 s)."""
        task, self._task = self._task, None
        await stop_tasks(task)

    async def run(self) -> None:
        """Flush every ``flush_s`` until cancelled (then once more, best effort)."""
        try:
            while True:
                await asyncio.sleep(self._flush_s)
                await self.flush()
        finally:
            if self._queue:
                await asyncio.shield(self._final_flush())

    async def _final_flush(self) -> None:
        try:
            async with asyncio.timeout(1.0):
                await self.flush()
        except TimeoutError:
            self.dropped += len(self._queue)
            self._queue.clear()

    async def flush(self) -> None:
        """Write everything queued now, in batches of up to 256 answers."""
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
            try:
                await self._write(batch)
            except (RedisError, OSError) as error:
                self.dropped += len(batch)
                if not self._failing:
                    logger.warning(
                        "served log: Redis refused %d entries (%s); dropping until it accepts",
                        len(batch),
                        type(error).__name__,
                        extra={"event": "served_log_dropped"},
                    )
                self._failing = True
                return
            self.written += len(batch)
            if self._failing:
                logger.info("served log: writing again", extra={"event": "served_log_up"})
                self._failing = False
            await asyncio.sleep(0)  # let waiting calls run between batches

    async def _write(self, batch: list[tuple[SerializedObservation, int, bool]]) -> None:
        client = self._client
        if self._cluster is not None:
            client = self._cluster.client_for(self._stream)
        if client is None:
            raise RedisError("no Redis client")
        records: list[Record] = [
            (
                answer.provenance.symbol,
                served_ns,
                from_cache,
                answer.provenance.views,
                answer.event_times_ns,
                answer.packed_values,
            )
            for answer, served_ns, from_cache in batch
            if answer.provenance is not None
        ]
        await client.xadd(
            self._stream,
            encode_batch(records),  # type: ignore[arg-type]
            maxlen=self._stream_max_len,
            approximate=True,
        )
