"""``python -m client SYMBOL`` / ``usdcop-observation SYMBOL``: print one observation as a
named table; optionally push the agent's position first (``--push``).

What enters: a symbol, a target, the channel's TLS files and PushState's token (``--token-file``
or ``USDCOP_PUSH_TOKEN``: never a flag's value, which every user sees in ``ps``). What leaves:
the table (or JSON) on stdout, exit 0; or a one-line error on stderr and the exit code of its
kind (``EXIT_CODES``, listed in ``--help``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from canonical.contract import FEATURES
from client._base import DEFAULT_TARGET, DEFAULT_TIMEOUT_S
from client._errors import ContractMismatch, ObservationClientError, ObservationRpcError
from client._result import ObservationResult
from client._tls import ClientTls
from client._version import version_line
from client.sync import ObservationClient

EXIT_RPC_ERROR = 1
EXIT_USAGE = 2  # argparse's own
EXIT_CONTRACT = 3
EXIT_OTHER = 4
EXIT_CODES = {
    0: "the observation was printed (and the position pushed)",
    EXIT_RPC_ERROR: "the call failed with a gRPC status (UNAVAILABLE, NOT_FOUND, ...)",
    EXIT_USAGE: "usage error",
    EXIT_CONTRACT: "the server serves another feature contract",
    EXIT_OTHER: "any other error (a TLS or token file that cannot be read, a malformed answer)",
}
TOKEN_ENV = "USDCOP_PUSH_TOKEN"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usdcop-observation",
        description="Fetch one observation from ObservationService and print it.",
        epilog="exit codes:\n"
        + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_line("usdcop-observation"))
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
    parser.add_argument(
        "--push",
        type=float,
        metavar="POSITION",
        help="first push the agent's position in [-1, 1] (PushState, event time now)",
    )
    tls = parser.add_argument_group(
        "security", "TLS is on with --tls or any of the PEM files; the token goes with --push"
    )
    tls.add_argument("--tls", action="store_true", help="TLS with the system's trust store")
    tls.add_argument("--ca-file", type=Path, help="PEM CA bundle that signed the server's cert")
    tls.add_argument(
        "--cert-file", type=Path, help="PEM client certificate (mTLS), with --key-file"
    )
    tls.add_argument("--key-file", type=Path, help="PEM key of --cert-file")
    tls.add_argument(
        "--token-file",
        type=Path,
        help=f"file holding PushState's bearer token [default: env {TOKEN_ENV}]",
    )
    return parser


def _tls(args: argparse.Namespace) -> ClientTls | None:
    if not (args.tls or args.ca_file or args.cert_file or args.key_file):
        return None
    return ClientTls.from_files(args.ca_file, args.cert_file, args.key_file)


def _token(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    if args.token_file is not None:
        return args.token_file.read_text().strip() or None
    return environ.get(TOKEN_ENV, "").strip() or None


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
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.cert_file is None) != (args.key_file is None):
        parser.error("--cert-file and --key-file go together")
    try:
        tls, token = _tls(args), _token(args, os.environ)
    except OSError as error:
        print(f"error: {error.filename}: {error.strerror}", file=sys.stderr)
        return EXIT_OTHER
    try:
        with ObservationClient(
            args.target, timeout_s=args.timeout_s, tls=tls, push_token=token
        ) as obs:
            if args.push is not None and not obs.push_state(args.symbol, args.push):
                print(
                    "note: the store holds a newer state; the push was not applied", file=sys.stderr
                )
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
