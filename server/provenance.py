"""Where each view of an answer came from, as one interned object per distinct combination.

What enters: a symbol and, per view in contract order, its ``ValueSource`` and
``FallbackReason``. What leaves: a ``Provenance`` shared by every answer with the same
combination (``provenance_of`` interns them), so metrics can count answers with one dict
increment keyed by object identity and logs can spot a change with one ``is`` comparison.
"""

from __future__ import annotations

import functools

from usdcop.observation.v1 import observation_pb2 as pb

from online_store.read_plan import VIEW_LAYOUTS


def source_label(source: pb.ValueSource.ValueType) -> str:
    """``online_store`` / ``fallback`` (metric and log label of a ValueSource)."""
    return "fallback" if source == pb.VALUE_SOURCE_COMPUTE_FALLBACK else "online_store"


def reason_label(reason: pb.FallbackReason.ValueType) -> str:
    """``none`` / ``store_unavailable`` / ``view_expired`` ... (label of a FallbackReason)."""
    return pb.FallbackReason.Name(reason).removeprefix("FALLBACK_REASON_").lower()


class Provenance:
    """Per view of one symbol's answer: (view, source label, reason label). Compared and hashed
    by identity: equal combinations are the same object (see ``provenance_of``)."""

    __slots__ = ("symbol", "views")

    def __init__(self, symbol: str, views: tuple[tuple[str, str, str], ...]) -> None:
        self.symbol = symbol
        self.views = views

    def __repr__(self) -> str:
        return f"Provenance({self.symbol!r}, {self.views!r})"


@functools.lru_cache(maxsize=1024)
def provenance_of(
    symbol: str,
    sources: tuple[pb.ValueSource.ValueType, ...],
    reasons: tuple[pb.FallbackReason.ValueType, ...],
) -> Provenance:
    """The interned provenance of an answer (one object per distinct argument tuple)."""
    return Provenance(
        symbol,
        tuple(
            (layout.name, source_label(source), reason_label(reason))
            for layout, source, reason in zip(VIEW_LAYOUTS, sources, reasons, strict=True)
        ),
    )
