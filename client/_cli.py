"""``python -m client SYMBOL``: print one observation as a named table.

What enters: a symbol and a target. What leaves: the table (or JSON) on stdout, exit 0;
or a one-line error with the gRPC status on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from canonical.contract import FEATURES
from client._base import DEFAULT_TARGET, DEFAULT_TIMEOUT_S
from client._errors import ContractMismatch, ObservationClientError, ObservationRpcError
from client._result import ObservationResult
from client.sync import ObservationClient

EXIT_RPC_ERROR = 2
EXIT_CONTRACT = 3
EXIT_OTHER = 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m client",
        description="Fetch one observation from ObservationService and print it.",
    )
    parser.add_argument("symbol", help="traded symbol, e.g. USDCOP")
    parser.add_argument(
        "--target", default=DEFAULT_TARGET, help=f"server host:port (default {DEFAULT_TARGET})"
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"deadline per call in seconds (default {DEFAULT_TIMEOUT_S})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def render_table(result: ObservationResult) -> str:
    """The observation as a fixed-width table: one row per feature."""
    by_view = {info.view: info for info in result.views}
    header = ("idx", "feature", "value", "view", "source", "freshness", "event time (UTC)")
    rows = []
    for feature, value in zip(FEATURES, result.values.tolist(), strict=True):
        info = by_view.get(feature.view)
        source = "?" if info is None else info.source
        if info is not None and info.fallback_reason != "none":
            source = f"{source} ({info.fallback_reason})"
        rows.append(
            (
                str(feature.index),
                feature.name,
                f"{value:.7g}",
                feature.view,
                source,
                "?" if info is None else info.freshness,
                "?" if info is None else info.event_time.strftime("%Y-%m-%d %H:%M:%S"),
            )
        )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    numeric = (0, 2)  # idx and value align right

    def line(row: tuple[str, ...]) -> str:
        cells = (
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join(cells).rstrip()

    lines = [line(row) for row in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    served = result.served_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    lines.append("")
    lines.append(f"symbol={result.symbol}  from_cache={result.from_cache}  served_at={served} UTC")
    return "\n".join(lines)


def render_json(result: ObservationResult) -> str:
    """The observation as JSON: features by name, views, from_cache, served_at."""
    payload = {
        "symbol": result.symbol,
        "values": result.by_name(),
        "views": [
            {
                "view": info.view,
                "event_time": info.event_time.isoformat(),
                "freshness": info.freshness,
                "source": info.source,
                "fallback_reason": info.fallback_reason,
            }
            for info in result.views
        ],
        "from_cache": result.from_cache,
        "served_at": result.served_at.isoformat(),
    }
    return json.dumps(payload, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m client`` and the ``usdcop-observation`` script."""
    args = _parser().parse_args(argv)
    try:
        with ObservationClient(args.target, timeout_s=args.timeout_s) as obs:
            result = obs.get(args.symbol)
    except ObservationRpcError as error:
        print(f"error: {args.target}: {error}", file=sys.stderr)
        return EXIT_RPC_ERROR
    except ContractMismatch as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONTRACT
    except (ObservationClientError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_OTHER
    print(render_json(result) if args.json else render_table(result))
    return 0
