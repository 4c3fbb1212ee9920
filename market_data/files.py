"""Raw market data files: where they live, reading (validated) and atomic writing.

What enters: a data directory or file path, and frames in the documented schema.
What leaves: validated frames (:func:`market_data.schema.validate_bars` / ``validate_macro``)
and parquet or csv files replaced atomically (write a temporary file, then ``os.replace``),
so a reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

RAW_DIR = "raw"
BARS_FILE = "usdcop_5m.parquet"
MACRO_FILE = "macro_daily.parquet"
_FORMATS = (".parquet", ".csv")


def bars_path(data_dir: Path) -> Path:
    """``data_dir/raw/usdcop_5m.parquet``."""
    return Path(data_dir) / RAW_DIR / BARS_FILE


def macro_path(data_dir: Path) -> Path:
    """``data_dir/raw/macro_daily.parquet``."""
    return Path(data_dir) / RAW_DIR / MACRO_FILE


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise ValueError(f"{path}: unsupported format {suffix!r}; use .parquet or .csv")
    return suffix


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd  # on first read: the paths alone (the server's fallback) need no pandas

    path = Path(path)
    if _format(path) == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write(path: Path, df: pd.DataFrame) -> None:
    if _format(Path(path)) == ".parquet":
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, date_format="%Y-%m-%d"))


def read_bars(path: Path) -> pd.DataFrame:
    """Bars from a parquet or csv file, validated (raises ``SchemaError``)."""
    from market_data.schema import validate_bars

    return validate_bars(_read(path))


def read_macro(path: Path) -> pd.DataFrame:
    """Macro prints from a parquet or csv file, validated (raises ``SchemaError``)."""
    from market_data.schema import validate_macro

    return validate_macro(_read(path))


def write_bars(path: Path, df: pd.DataFrame) -> None:
    """Validate ``df`` and write it atomically (format from the suffix)."""
    from market_data.schema import validate_bars

    frame = validate_bars(df)
    if Path(path).suffix.lower() == ".csv":
        frame = frame.assign(time=frame["time"].map(lambda t: t.isoformat()))
    _write(path, frame)


def write_macro(path: Path, df: pd.DataFrame) -> None:
    """Validate ``df`` and write it atomically (format from the suffix)."""
    from market_data.schema import validate_macro

    _write(path, validate_macro(df))
