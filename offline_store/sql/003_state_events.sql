-- The agent's applied pushes (drained from the server's stream by the pipeline), and the
-- state view's flag saying a row's position is the generator's rule rather than a pushed one.
CREATE TABLE state_events (
    symbol           text        NOT NULL,
    event_timestamp  timestamptz NOT NULL,
    position         real        NOT NULL CHECK (position BETWEEN -1 AND 1),
    time_normalized  real        NOT NULL,
    recorded         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, event_timestamp)
);

ALTER TABLE state_features ADD COLUMN synthetic boolean NOT NULL DEFAULT true;
