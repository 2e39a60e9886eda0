-- Verdicts of the predictor, one per window and model version.
CREATE TABLE predictions (
    view          text             NOT NULL,  -- 'source' or 'destination'
    key           text             NOT NULL,  -- the source or destination address
    window_start  timestamptz      NOT NULL,
    window_size   integer          NOT NULL,  -- 5, 30 or 180
    label         text             NOT NULL,  -- Normal or one of the 8 attack classes
    confidence    double precision NOT NULL,  -- probability of `label`, 0..1
    probabilities jsonb            NOT NULL,  -- every class's probability
    model_version text             NOT NULL,
    rules         text[]           NOT NULL DEFAULT '{}',  -- rule baselines that fired
    predicted_at  timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (view, key, window_start, window_size, model_version)
);
CREATE INDEX predictions_window_start_idx ON predictions (window_start);
CREATE INDEX predictions_attacks_idx ON predictions (label, window_start) WHERE label <> 'Normal';

-- One alert per (view, key, class) while the attack goes on: later windows update it instead
-- of adding rows. state: 'open' -> 'resolved' (by an operator) or 'closed' (quiet period over).
CREATE TABLE alerts (
    id              bigserial        PRIMARY KEY,
    view            text             NOT NULL,
    key             text             NOT NULL,
    class           text             NOT NULL,
    state           text             NOT NULL DEFAULT 'open',
    severity        text             NOT NULL,  -- LOW, MEDIUM, HIGH, CRITICAL
    detected_by     text             NOT NULL,  -- 'model', 'rule' or 'both'
    first_seen      timestamptz      NOT NULL,  -- start of the first window
    last_seen       timestamptz      NOT NULL,  -- end of the latest window
    window_count    integer          NOT NULL DEFAULT 0,
    peak_confidence double precision NOT NULL,
    packets         bigint           NOT NULL DEFAULT 0,
    bytes           bigint           NOT NULL DEFAULT 0,
    distinct_sources integer,                   -- destination view: sources seen (floods)
    summary         text             NOT NULL,  -- e.g. "syn_flood against 10.0.0.5 from 9,600 sources"
    evidence        jsonb            NOT NULL DEFAULT '{}',  -- rule evidence, top features
    model_version   text,
    created_at      timestamptz      NOT NULL DEFAULT now(),
    updated_at      timestamptz      NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    closed_at       timestamptz,
    CHECK (state IN ('open', 'resolved', 'closed')),
    CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    CHECK (detected_by IN ('model', 'rule', 'both'))
);
CREATE UNIQUE INDEX alerts_one_open_idx ON alerts (view, key, class) WHERE state = 'open';
CREATE INDEX alerts_last_seen_idx ON alerts (last_seen DESC);
CREATE INDEX alerts_state_severity_idx ON alerts (state, severity);

-- The windows that raised or extended an alert (the alert's detail view lists them).
CREATE TABLE alert_windows (
    alert_id     bigint      NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    view         text        NOT NULL,
    key          text        NOT NULL,
    window_start timestamptz NOT NULL,
    window_size  integer     NOT NULL,
    PRIMARY KEY (alert_id, view, key, window_start, window_size)
);
