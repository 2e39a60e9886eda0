-- One row per captured frame. Partitioned by UTC day on ts so that retention is a cheap
-- DROP TABLE of whole days instead of a DELETE that bloats the table. Day partitions are
-- created on demand by the ingestor (nta_ensure_raw_partition) before it writes into a day.
CREATE TABLE raw_packets (
    ts               timestamptz NOT NULL,
    interface        text        NOT NULL,
    src_ip           inet,
    dst_ip           inet,
    protocol         text        NOT NULL,
    length           integer     NOT NULL,
    src_port         integer,
    dst_port         integer,
    tcp_flags        text,
    tcp_syn          boolean,
    tcp_ack          boolean,
    tcp_fin          boolean,
    tcp_rst          boolean,
    tcp_psh          boolean,
    seq              bigint,
    ack              bigint,
    icmp_type        integer,
    icmp_code        integer,
    arp_op           integer,
    arp_psrc         inet,
    arp_pdst         inet,
    arp_hwsrc        macaddr,
    arp_hwdst        macaddr,
    dns_query        boolean,
    dns_qname        text,
    dns_qtype        integer,
    dns_response     boolean,
    dns_answer_count integer,
    -- u32 on the wire: bigint so no value needs clamping.
    dns_answer_size  bigint,
    http_method      text,
    http_path        text,
    http_status_code integer,
    http_host        text,
    agent_id         text        NOT NULL,
    batch_id         text        NOT NULL,
    idx              integer     NOT NULL,
    src_mac          macaddr,
    dst_mac          macaddr,
    vlan             integer,
    inserted_at      timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (ts);

-- No primary key: (batch_id, idx) is unique by construction (the ledger below admits a batch
-- once), and a unique index would cost every COPY a second B-tree insert per row.
-- Rows arrive in (nearly) time order, so a BRIN index finds a time range for a fraction of
-- a B-tree's write cost.
CREATE INDEX raw_packets_ts_idx ON raw_packets USING brin (ts);
CREATE INDEX raw_packets_src_ip_ts_idx ON raw_packets (src_ip, ts);
CREATE INDEX raw_packets_dst_ip_ts_idx ON raw_packets (dst_ip, ts);

-- Exactly-once ledger: a batch's row here is written in the same transaction as its packets,
-- so "batch in ledger" <=> "its packets are stored", whatever crashes or redeliveries happen.
CREATE TABLE ingested_batches (
    batch_id    text        PRIMARY KEY,
    agent_id    text        NOT NULL,
    records     integer     NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingested_batches_ingested_at_idx ON ingested_batches (ingested_at);

-- Creates the partition of raw_packets holding UTC day `day` unless it exists; returns true
-- when it created it. Concurrent callers are serialised by an advisory lock; existence is
-- checked with a query on pg_class (a fresh MVCC snapshot) rather than to_regclass, whose
-- cache is not refreshed by taking an advisory lock, and a lost race is absorbed anyway.
CREATE FUNCTION nta_ensure_raw_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    part text := 'raw_packets_p' || to_char(day, 'YYYYMMDD');
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('nta_raw_packets_partitions'));
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid
               WHERE i.inhparent = 'raw_packets'::regclass AND c.relname = part) THEN
        RETURN false;
    END IF;
    BEGIN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF raw_packets FOR VALUES FROM (%L) TO (%L)',
            part,
            to_char(day, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(day + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
    EXCEPTION WHEN duplicate_table OR unique_violation THEN
        RETURN false;
    END;
    RETURN true;
END $$;

-- Drops every day partition of raw_packets that ends more than keep_days days ago; returns
-- the names dropped. Only partitions named by nta_ensure_raw_partition are considered.
CREATE FUNCTION nta_drop_old_raw_partitions(keep_days integer) RETURNS SETOF text
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
END $$;
