"""``python -m client.load``: the load tool (``usdcop-observation-load``)."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from client.load.command import cli
    except ModuleNotFoundError as missing:
        if missing.name != "hdrh":
            raise
        print(
            "usdcop-observation-load needs the client's load extra: "
            "pip install 'usdcop-observation-client[load]'",
            file=sys.stderr,
        )
        return 2
    return cli()


if __name__ == "__main__":
    raise SystemExit(main())
