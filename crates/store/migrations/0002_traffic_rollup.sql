-- Packet and byte counts per minute and per hour, by protocol, source address, destination
-- address and destination port, for the dashboard: it sums whole hours plus the minutes at the
-- edges of a range instead of scanning raw_packets. The ingestor's rollup worker (its own
-- durable consumer on NTA_PACKETS) adds many batches' counts per transaction together with
-- their ids in rolled_up_batches, so every batch is counted exactly once.
CREATE TABLE traffic_rollup (
    width   smallint    NOT NULL CHECK (width IN (60, 3600)),
    -- 'protocol', 'src', 'dst' or 'port'; value is the protocol name, host(address) or the port.
    dim     text        NOT NULL,
    bucket  timestamptz NOT NULL,
    value   text        NOT NULL,
    packets bigint      NOT NULL,
    bytes   bigint      NOT NULL,
    PRIMARY KEY (width, dim, bucket, value) INCLUDE (packets, bytes)
);

-- The rollup worker's ledger, like ingested_batches for the packets.
CREATE TABLE rolled_up_batches (
    batch_id  text        PRIMARY KEY,
    rolled_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rolled_up_batches_rolled_at_idx ON rolled_up_batches (rolled_at);

-- The rollup rows raw_packets implies for [lo, hi), computed from the packets themselves: for
-- tests and benchmarks to check the incremental counts against the source of truth, and for an
-- operator to rebuild a range.
CREATE FUNCTION nta_traffic_rollup_of(lo timestamptz, hi timestamptz)
RETURNS TABLE (width smallint, dim text, bucket timestamptz, value text, packets bigint, bytes bigint)
LANGUAGE sql STABLE AS $$
    WITH p AS (
        SELECT ts, protocol, host(src_ip) AS src, host(dst_ip) AS dst,
               CASE WHEN dst_port > 0 THEN dst_port::text END AS port, length
        FROM raw_packets WHERE ts >= lo AND ts < hi
    ), w(width) AS (VALUES (60::smallint), (3600::smallint)),
    d AS (
        SELECT w.width, to_timestamp(floor(extract(epoch from p.ts) / w.width) * w.width) AS bucket,
               x.dim, x.value, p.length
        FROM p CROSS JOIN w
        CROSS JOIN LATERAL (VALUES ('protocol', p.protocol), ('src', p.src), ('dst', p.dst), ('port', p.port)) x(dim, value)
        WHERE x.value IS NOT NULL
    )
    SELECT width, dim, bucket, value, count(*)::bigint, sum(length)::bigint FROM d GROUP BY 1, 2, 3, 4
$$;
