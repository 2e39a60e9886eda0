-- Re-scoring runs (`nta rescore`): the retained packets of a time range replayed through the
-- windower and predictor code with another model, into tables of their own. The live
-- `predictions`, `alerts` and `alert_windows` are never written by a run.
CREATE TABLE runs (
    name          text        PRIMARY KEY,  -- given by the operator: [A-Za-z0-9_.-]{1,64}
    model_version text        NOT NULL,
    model_path    text        NOT NULL,
    model_sha256  text        NOT NULL,     -- of the model file's bytes
    range_from    timestamptz NOT NULL,     -- capture time range [range_from, range_to]
    range_to      timestamptz NOT NULL,
    agent_id      text,                     -- NULL: every agent
    -- A run is written in one transaction: it appears complete or not at all (no state column).
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    messages      bigint      NOT NULL DEFAULT 0,  -- packet batches read from NTA_PACKETS
    records       bigint      NOT NULL DEFAULT 0,  -- records in the range, windowed
    late_records  bigint      NOT NULL DEFAULT 0,  -- behind the watermark, in no window (as live)
    windows       bigint      NOT NULL DEFAULT 0,
    alerts        bigint      NOT NULL DEFAULT 0,
    CHECK (range_from <= range_to)
);

-- One verdict per window of the run (the columns of `predictions`).
CREATE TABLE run_predictions (
    run           text             NOT NULL REFERENCES runs (name) ON DELETE CASCADE,
    view          text             NOT NULL,
    key           text             NOT NULL,
    window_start  timestamptz      NOT NULL,
    window_size   integer          NOT NULL,
    label         text             NOT NULL,
    confidence    double precision NOT NULL,
    probabilities jsonb            NOT NULL,
    rules         text[]           NOT NULL DEFAULT '{}',
    decided_by    text             NOT NULL CHECK (decided_by IN ('model', 'rules')),
    PRIMARY KEY (run, view, key, window_start, window_size)
);

-- The run's alerts, numbered 1..n in (first_seen, view, key, class) order so that a rerun of
-- the same inputs yields identical rows. No state: a run's alerts are what the range showed.
CREATE TABLE run_alerts (
    run              text             NOT NULL REFERENCES runs (name) ON DELETE CASCADE,
    seq              integer          NOT NULL,
    view             text             NOT NULL,
    key              text             NOT NULL,
    class            text             NOT NULL,
    severity         text             NOT NULL,
    detected_by      text             NOT NULL,
    first_seen       timestamptz      NOT NULL,
    last_seen        timestamptz      NOT NULL,
    window_count     integer          NOT NULL,
    peak_confidence  double precision NOT NULL,
    packets          bigint           NOT NULL,
    bytes            bigint           NOT NULL,
    distinct_sources integer,
    summary          text             NOT NULL,
    evidence         jsonb            NOT NULL DEFAULT '{}',
    rules            text[]           NOT NULL DEFAULT '{}',
    PRIMARY KEY (run, seq)
);
CREATE INDEX run_alerts_key_idx ON run_alerts (run, view, key, class);

-- The windows that raised or extended each run alert.
CREATE TABLE run_alert_windows (
    run          text        NOT NULL,
    seq          integer     NOT NULL,
    window_start timestamptz NOT NULL,
    window_size  integer     NOT NULL,
    PRIMARY KEY (run, seq, window_start, window_size),
    FOREIGN KEY (run, seq) REFERENCES run_alerts (run, seq) ON DELETE CASCADE
);
