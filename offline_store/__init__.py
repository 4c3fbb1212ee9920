"""The offline store: L0 raw market data, the L1 feature tables and the agent's recorded pushes,
as parquet files under ``data/`` or in PostgreSQL, behind one interface.

What enters: validated L0 frames (``market_data.schema``: bars, macro), the L1 tables that
``canonical.offline_tables.build_offline_tables`` computes, the agent's pushes, and where the
store is: the data folder and, for PostgreSQL, a
:class:`~offline_store.connection.PostgresAddress`. What leaves: an
:class:`~offline_store.store.OfflineStore` (``factory.open_store``, the one place that chooses)
whose callers -- the pipeline, the doctor, the server's fallback -- never ask which store it is;
the files ``data/offline/<view>.parquet`` and ``state_events.parquet``, or the tables
``usdcop_5m``, ``macro_daily``, ``technical_features``, ``macro_features``,
``state_features``, ``state_events`` (schema from the versioned files in ``offline_store/sql/``),
which Feast's file or postgres offline store reads (one source per view).

Modules: ``store`` (the interface and :class:`~offline_store.store.OfflineRefresh`),
``factory`` (``open_store``), ``files`` and ``postgres`` (the two stores, light at import),
``file_tables`` (the parquet tables), ``postgres_tables`` (L0 then L1 into PostgreSQL,
pushes recorded),
``l1_rows`` (the rows of new bars and the re-derived state rows, the same for both),
``connection`` (the address, without ever printing the password), ``schema`` (applies
``sql/NNN_*.sql`` in order, once, recorded in ``schema_version``), ``load`` (idempotent upserts:
COPY into a temporary table, then ``INSERT ... ON CONFLICT DO UPDATE`` only where a value
differs), ``read`` (frames back, in the ``market_data.schema`` layout), ``feast_sources``
(each view's Feast batch source; imports Feast).

The file store stays the default; ``FEAST_OFFLINE_STORE_TYPE=postgres`` selects PostgreSQL
(``pipeline.settings``).
"""
