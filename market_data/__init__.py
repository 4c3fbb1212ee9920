"""L0 raw market data: USD/COP 5-minute bars and daily macro prints.

What enters: nothing (a seeded generator) or your own files. What leaves: validated frames
and their numpy views, read by the canonical feature builder (``canonical``).

Modules: ``session`` (trading calendar), ``schema`` (columns, validation, numpy views),
``generator`` (seeded synthetic data, live continuation), ``files`` (paths, read, atomic write).

Bringing real data
------------------
Drop two files in ``<data_dir>/raw/`` (parquet; csv with the same columns is also read by
``files.read_bars`` / ``files.read_macro``). Loaders validate and raise
``market_data.schema.SchemaError`` naming the column and row of the first violation.

``usdcop_5m.parquet`` -- one row per 5-minute bar (any number of symbols):

=========  ===========================  =================================================
column     type                         rule
=========  ===========================  =================================================
symbol     string                       non-empty, e.g. ``USDCOP``
time       timestamp, tz-aware (UTC)    bar OPEN time; strictly ascending per symbol (no
                                        duplicates); naive times are rejected; other zones
                                        are converted to UTC. In csv: ISO 8601 with offset,
                                        e.g. ``2025-03-03T13:00:00+00:00``
open       float64                      > 0, finite
high       float64                      >= max(open, close)
low        float64                      <= min(open, close), > 0
close      float64                      > 0, finite
=========  ===========================  =================================================

Generated sessions are Mon-Fri 13:00-17:55 UTC opens (60 bars); real files may hold any bar
times (gaps are fine: features are computed over bars in order, session gaps are not bars).

``macro_daily.parquet`` -- one row per weekday, the value known after that day's close:

=========  ===========================  =================================================
column     type                         meaning
=========  ===========================  =================================================
date       date (no time zone)          calendar day; weekdays only; strictly ascending
dxy        float64 > 0                  US dollar index (~100-110)
vix        float64 > 0                  equity volatility index (~12-35)
embi       float64 > 0                  EMBI Colombia spread, basis points (~250-450)
brent      float64 > 0                  Brent crude, USD/bbl (~60-95)
col_rate   float64 > 0                  Colombian policy rate, percent (~9-13)
us_rate    float64 > 0                  US policy rate, percent (~4-5.5)
usdmxn     float64 > 0                  USD/MXN spot (~16.5-20.5)
=========  ===========================  =================================================

The builder needs 60 macro rows before a bar's day (``generator.MACRO_WARMUP_WEEKDAYS``
gives a margin): bars on earlier days are not emitted.
"""
