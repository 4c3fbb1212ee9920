-- 001: L0 raw market data and the three L1 feature tables (contract CTR-FEATURE-001).
-- Applied once, in a transaction, by offline_store.schema.apply_schema; recorded in
-- schema_version. Never edit an applied file: add 002_*.sql instead.
-- The feature columns must match canonical/contract.py (a test compares them).

-- L0: 5-minute bars, one row per (symbol, bar open).
CREATE TABLE usdcop_5m (
    symbol  text             NOT NULL,
    time    timestamptz      NOT NULL,
    open    double precision NOT NULL,
    high    double precision NOT NULL,
    low     double precision NOT NULL,
    close   double precision NOT NULL,
    PRIMARY KEY (symbol, time)
);

-- L0: daily macro prints, one row per day.
CREATE TABLE macro_daily (
    date      date             PRIMARY KEY,
    dxy       double precision NOT NULL,
    vix       double precision NOT NULL,
    embi      double precision NOT NULL,
    brent     double precision NOT NULL,
    col_rate  double precision NOT NULL,
    us_rate   double precision NOT NULL,
    usdmxn    double precision NOT NULL
);

-- L1: one table per feature view; features are float32 (real), event_timestamp = bar open + 5 min.
CREATE TABLE technical_features (
    symbol           text        NOT NULL,
    event_timestamp  timestamptz NOT NULL,
    created          timestamptz NOT NULL,
    log_ret_5m       real        NOT NULL,
    log_ret_1h       real        NOT NULL,
    log_ret_4h       real        NOT NULL,
    rsi_9            real        NOT NULL,
    atr_pct          real        NOT NULL,
    adx_14           real        NOT NULL,
    PRIMARY KEY (symbol, event_timestamp)
);

CREATE TABLE macro_features (
    symbol            text        NOT NULL,
    event_timestamp   timestamptz NOT NULL,
    created           timestamptz NOT NULL,
    dxy_z             real        NOT NULL,
    dxy_change_1d     real        NOT NULL,
    vix_z             real        NOT NULL,
    embi_z            real        NOT NULL,
    brent_change_1d   real        NOT NULL,
    rate_spread       real        NOT NULL,
    usdmxn_change_1d  real        NOT NULL,
    PRIMARY KEY (symbol, event_timestamp)
);

CREATE TABLE state_features (
    symbol           text        NOT NULL,
    event_timestamp  timestamptz NOT NULL,
    created          timestamptz NOT NULL,
    position         real        NOT NULL,
    time_normalized  real        NOT NULL,
    PRIMARY KEY (symbol, event_timestamp)
);

-- Materialization and point-in-time joins scan by event time across symbols.
CREATE INDEX technical_features_event_timestamp ON technical_features (event_timestamp);
CREATE INDEX macro_features_event_timestamp ON macro_features (event_timestamp);
CREATE INDEX state_features_event_timestamp ON state_features (event_timestamp);
