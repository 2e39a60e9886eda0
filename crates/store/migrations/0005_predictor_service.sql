-- Additions of the predictor service to 0001 (new columns and indexes only; nothing renamed).

-- Who decided the label: 'model' (the forest of the window's view), or 'rules' when the model
-- has no forest for that view (label = the first rule's class, or Normal with confidence 0 and
-- probabilities '{}'). `instance`: the predictor process that wrote the row.
ALTER TABLE predictions
    ADD COLUMN decided_by text NOT NULL DEFAULT 'model' CHECK (decided_by IN ('model', 'rules')),
    ADD COLUMN instance   text;

-- Packets and bytes of an alert per window size. 5 s, 30 s and 180 s windows overlap, but the
-- windows of one size tile time, so each per-size sum counts a packet at most once;
-- `packets` / `bytes` are the largest of the three sums (the size that saw most of the attack).
-- `rules`: every rule baseline that fired on the alert's windows.
ALTER TABLE alerts
    ADD COLUMN packets_5   bigint NOT NULL DEFAULT 0,
    ADD COLUMN bytes_5     bigint NOT NULL DEFAULT 0,
    ADD COLUMN packets_30  bigint NOT NULL DEFAULT 0,
    ADD COLUMN bytes_30    bigint NOT NULL DEFAULT 0,
    ADD COLUMN packets_180 bigint NOT NULL DEFAULT 0,
    ADD COLUMN bytes_180   bigint NOT NULL DEFAULT 0,
    ADD COLUMN rules       text[] NOT NULL DEFAULT '{}';

-- The quiet-period closer scans open alerts by their last update.
CREATE INDEX alerts_open_updated_idx ON alerts (updated_at) WHERE state = 'open';
