"""The served log's entry (what was served, exactly) and its bounded queue."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest

from canonical.served_log import ServedRow, served_fields
from server.clock import ManualClock
from server.observation import assemble_observation
from server.serving_log import ServingLog
from server.store_reader import decode_reply
from tests.unit.server.test_assembly import FALLBACK, NOW_NS, STORE_VALUES, reply


def _answer(state_ts: int | None = None):  # type: ignore[no-untyped-def]
    read = decode_reply(reply({} if state_ts is None else {"state_features": state_ts}), NOW_NS)
    return assemble_observation("USDCOP", read, FALLBACK, NOW_NS)


def test_an_entry_round_trips_the_served_values_bit_for_bit_with_their_provenance() -> None:
    expired = NOW_NS - 2 * 3_600 * 10**9  # state's 1 h TTL passed: that view falls back
    answer = _answer(state_ts=expired)
    assert answer.provenance is not None
    fields = served_fields(
        "USDCOP",
        NOW_NS + 5,
        from_cache=True,
        views=answer.provenance.views,
        event_times_ns=answer.event_times_ns,
        packed_values=answer.packed_values,
    )
    row = ServedRow.from_fields(fields)
    expected = np.array([*STORE_VALUES[:13], -13.0, -14.0], dtype=np.float32)
    assert np.array_equal(np.array(row.values, dtype=np.float32), expected)
    assert row.sources == ("online_store", "online_store", "fallback")
    assert row.reasons == ("none", "none", "view_expired")
    assert row.event_times_ns[2] == FALLBACK.state_event_time_ns
    assert (row.symbol, row.served_at_ns, row.from_cache) == ("USDCOP", NOW_NS + 5, True)
    for broken in (
        {**fields, b"values": fields[b"values"][:-4]},
        {**fields, b"sources": b"online_store,fallback"},
        {**fields, b"sources": b"online_store,elsewhere,fallback"},
    ):
        with pytest.raises((struct.error, ValueError)):
            ServedRow.from_fields(broken)


def test_the_queue_is_bounded_and_counts_what_it_drops() -> None:
    log = ServingLog(None, b"p:served", ManualClock(wall_ns=NOW_NS), max_queue=2)
    answer = _answer()
    for _ in range(5):
        log.record(answer, False)
    assert (log.queued, log.dropped) == (2, 3)
    asyncio.run(log.flush())  # no Redis to write to: the batch is dropped, counted
    assert (log.queued, log.written, log.dropped) == (0, 0, 5)
