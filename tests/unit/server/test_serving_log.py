"""The served log's entry (what was served, exactly) and its bounded queue."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest

from canonical.served_log import decode_batch, encode_batch
from core.clock import ManualClock
from online_store.reader import decode_reply
from server.observation import assemble_observation
from server.serving_log import ServingLog
from tests.unit.server.test_assembly import FALLBACK, NOW_NS, STORE_VALUES, reply


def _answer(state_ts: int | None = None):  # type: ignore[no-untyped-def]
    read = decode_reply(reply({} if state_ts is None else {"state_features": state_ts}), NOW_NS)
    return assemble_observation("USDCOP", read, FALLBACK, NOW_NS)


def test_an_entry_round_trips_the_served_values_bit_for_bit_with_their_provenance() -> None:
    expired = NOW_NS - 2 * 3_600 * 10**9  # state's 1 h TTL passed: that view falls back
    answer = _answer(state_ts=expired)
    assert answer.provenance is not None
    fresh = _answer()
    assert fresh.provenance is not None
    fields = encode_batch(
        [
            (
                "USDCOP",
                NOW_NS + 5,
                True,
                answer.provenance.views,
                answer.event_times_ns,
                answer.packed_values,
            ),
            (
                "USDMXN",
                NOW_NS + 9,
                False,
                fresh.provenance.views,
                fresh.event_times_ns,
                fresh.packed_values,
            ),
        ]
    )
    row, other = decode_batch(fields)
    expected = np.array([*STORE_VALUES[:13], -13.0, -14.0], dtype=np.float32)
    assert np.array_equal(np.array(row.values, dtype=np.float32), expected)
    assert row.sources == ("online_store", "online_store", "fallback")
    assert row.reasons == ("none", "none", "view_expired")
    assert row.event_times_ns[2] == FALLBACK.state_event_time_ns
    assert (row.symbol, row.served_at_ns, row.from_cache) == ("USDCOP", NOW_NS + 5, True)
    assert (other.symbol, other.served_at_ns, other.from_cache) == ("USDMXN", NOW_NS + 9, False)
    assert other.sources == ("online_store",) * 3
    assert np.array_equal(np.array(other.values, dtype=np.float32), np.float32(STORE_VALUES))
    for broken in (
        {**fields, b"records": fields[b"records"][:-4]},
        {**fields, b"labels": b"online_store/none,elsewhere/none"},
        {**fields, b"symbols": b"USDCOP"},
    ):
        with pytest.raises((struct.error, ValueError, IndexError)):
            decode_batch(broken)


def test_the_queue_is_bounded_and_counts_what_it_drops() -> None:
    log = ServingLog(None, b"p:served", ManualClock(wall_ns=NOW_NS), max_queue=2)
    answer = _answer()
    for _ in range(5):
        log.record(answer, False)
    assert (log.queued, log.dropped) == (2, 3)
    asyncio.run(log.flush())  # no Redis to write to: the batch is dropped, counted
    assert (log.queued, log.written, log.dropped) == (0, 0, 5)
