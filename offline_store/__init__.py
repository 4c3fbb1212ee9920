"""The PostgreSQL offline store: L0 raw market data and the L1 feature tables in PostgreSQL.

What enters: validated L0 frames (``market_data.schema``: bars, macro) and the L1 tables that
``canonical.offline_tables.build_offline_tables`` computes, plus a
:class:`~offline_store.connection.PostgresAddress`. What leaves: the tables ``usdcop_5m``,
``macro_daily``, ``technical_features``, ``macro_features``, ``state_features`` (schema from the
versioned files in ``offline_store/sql/``), which Feast's postgres offline store reads (one
``PostgreSQLSource`` per view) and the server's fallback may read its raw window from.

Modules: ``connection`` (the address, without ever printing the password), ``schema`` (applies
``sql/NNN_*.sql`` in order, once, recorded in ``schema_version``), ``load`` (idempotent upserts:
COPY into a temporary table, then ``INSERT ... ON CONFLICT DO UPDATE`` only where a value
differs), ``read`` (frames back, in the ``market_data.schema`` layout).

The file store (parquet under ``data/``) stays the default; ``FEAST_OFFLINE_STORE_TYPE=postgres``
selects this one (``pipeline.settings``).
"""
