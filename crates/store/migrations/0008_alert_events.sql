-- Outbox of alert events: written in the transaction that changes the alert, published to
-- JetStream `NTA_ALERTS` by the predictor's relay (Nats-Msg-Id `nta-alert-event-<id>`), then
-- marked published. A crash between the commit and the publish leaves the row unmarked, so it
-- goes out after the restart; JetStream drops a second copy within its duplicate window.
CREATE TABLE alert_events (
    id           bigserial   PRIMARY KEY,
    alert_id     bigint      NOT NULL,
    event        text        NOT NULL,  -- opened, updated, resolved, closed
    class        text        NOT NULL,  -- subject token: nta.alerts.<class>
    body         jsonb       NOT NULL,  -- wire::AlertEvent as of the change
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
-- The relay's scan: only the rows still to publish.
CREATE INDEX alert_events_unpublished ON alert_events (id) WHERE published_at IS NULL;
