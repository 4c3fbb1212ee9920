"""L1 canonical features: the 15-feature contract and the one builder that computes it.

What enters: validated raw bars and macro prints (``market_data``).
What leaves: feature rows in contract order (``contract``), computed by ``builder`` (using the
Wilder indicators of ``indicators``) both in batch -- written by ``offline_tables`` as one
parquet file per Feast feature view -- and for the latest window, in the server's fallback.
"""
