"""``python -m client USDCOP [--target host:port] [--json]``."""

from __future__ import annotations

import sys

from client._cli import main

if __name__ == "__main__":
    sys.exit(main())
