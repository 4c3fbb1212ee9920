"""The client's view of an answer: an immutable result with a read-only float32 vector.

What enters: an ``Observation`` proto. What leaves: :class:`ObservationResult`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf.timestamp_pb2 import Timestamp
from usdcop.observation.v1 import observation_pb2 as pb

from canonical.contract import FEATURE_NAMES, N_FEATURES
from client._errors import ContractMismatch, MalformedObservation


def _enum_label(enum_name: str, prefix: str) -> str:
    return enum_name.removeprefix(prefix).lower()


_FRESHNESS = {v.number: _enum_label(v.name, "FRESHNESS_") for v in pb.Freshness.DESCRIPTOR.values}
_SOURCE = {v.number: _enum_label(v.name, "VALUE_SOURCE_") for v in pb.ValueSource.DESCRIPTOR.values}
_REASON = {
    v.number: _enum_label(v.name, "FALLBACK_REASON_") for v in pb.FallbackReason.DESCRIPTOR.values
}


def timestamp_to_datetime(ts: Timestamp) -> datetime:
    """A protobuf Timestamp as a tz-aware UTC datetime (microsecond precision)."""
    return datetime.fromtimestamp(ts.seconds, tz=UTC).replace(microsecond=ts.nanos // 1000)


@dataclass(frozen=True)
class ViewInfo:
    """Where one feature view's values came from.

    >>> info = ViewInfo("state_features", datetime(2024, 1, 2, 13, 5, tzinfo=UTC),
    ...                 "fresh", "online_store", "none")
    >>> info.source
    'online_store'
    """

    view: str
    """Feature view name, e.g. ``technical_features``."""
    event_time: datetime
    """Event time (UTC) of the values served for this view."""
    freshness: str
    """``fresh`` or ``expired`` (the view's TTL against the server's clock)."""
    source: str
    """``online_store`` (Redis, Feast's layout) or ``compute_fallback``."""
    fallback_reason: str
    """``none`` for the online store, else e.g. ``store_unavailable``, ``view_expired``."""


@dataclass(frozen=True, eq=False)
class ObservationResult:
    """One observation: 15 float32 values in contract order, with their provenance.

    ``values`` is read-only (the result may be shared); copy it to modify it. Results compare
    by identity (compare ``values`` with numpy, e.g. ``np.array_equal``).

    >>> result = client.get("USDCOP")          # doctest: +SKIP
    >>> result.values.shape, result.values.dtype  # doctest: +SKIP
    ((15,), dtype('float32'))
    >>> result.by_name()["rsi_9"]             # doctest: +SKIP
    54.2
    """

    symbol: str
    """The symbol asked for."""
    values: npt.NDArray[np.float32]
    """Shape (15,), float32, read-only, in contract order (``canonical.contract.FEATURE_NAMES``)."""
    views: tuple[ViewInfo, ...]
    """One entry per feature view, in contract order."""
    from_cache: bool
    """True when the server answered from its local TTL cache."""
    served_at: datetime
    """When the server assembled the answer (UTC)."""
    proto: pb.Observation
    """The raw answer."""

    def by_name(self) -> dict[str, float]:
        """The values keyed by feature name, in contract order."""
        return dict(zip(FEATURE_NAMES, self.values.tolist(), strict=True))

    def __array__(
        self, dtype: npt.DTypeLike | None = None, copy: bool | None = None
    ) -> npt.NDArray[Any]:
        out = self.values if dtype is None else self.values.astype(dtype)
        return out.copy() if copy else out


def result_from_proto(observation: pb.Observation, expected_hash: str | None) -> ObservationResult:
    """Validate an ``Observation`` against the contract and wrap it.

    Raises MalformedObservation when it does not carry exactly 15 values, and
    ContractMismatch when it names another contract hash than ``expected_hash``.
    """
    if len(observation.values) != N_FEATURES:
        raise MalformedObservation(
            f"observation of {observation.symbol!r} has {len(observation.values)} values; "
            f"the contract has exactly {N_FEATURES}"
        )
    if expected_hash is not None and observation.contract_hash != expected_hash:
        raise ContractMismatch(expected_hash, observation.contract_hash, observation.contract_id)
    values = np.asarray(observation.values, dtype=np.float32)
    values.flags.writeable = False
    views = tuple(
        ViewInfo(
            view=status.view,
            event_time=timestamp_to_datetime(status.event_time),
            freshness=_FRESHNESS.get(status.freshness, str(status.freshness)),
            source=_SOURCE.get(status.source, str(status.source)),
            fallback_reason=_REASON.get(status.fallback_reason, str(status.fallback_reason)),
        )
        for status in observation.views
    )
    return ObservationResult(
        symbol=observation.symbol,
        values=values,
        views=views,
        from_cache=observation.from_cache,
        served_at=timestamp_to_datetime(observation.served_at),
        proto=observation,
    )
