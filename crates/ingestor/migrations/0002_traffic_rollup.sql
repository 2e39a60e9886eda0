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

-- Retention drops rollup rows with the day partitions they summarise.
CREATE OR REPLACE FUNCTION nta_drop_old_raw_partitions(keep_days integer) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    cutoff date := ((now() AT TIME ZONE 'UTC') - make_interval(days => keep_days))::date;
    part text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('nta_raw_packets_partitions'));
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'raw_packets'::regclass
          AND c.relname ~ '^raw_packets_p[0-9]{8}$'
        ORDER BY c.relname
    LOOP
        -- The partition covers [day, day + 1): drop it once all of it is older than cutoff.
        IF to_date(substr(part, 14), 'YYYYMMDD') + 1 <= cutoff THEN
            EXECUTE format('DROP TABLE IF EXISTS %I', part);
            RETURN NEXT part;
        END IF;
    END LOOP;
    DELETE FROM traffic_rollup WHERE bucket < (cutoff::timestamp AT TIME ZONE 'UTC');
END $$;
