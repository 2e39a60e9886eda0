#!/usr/bin/env bash
# Where PostgreSQL's time goes when it stores packets: the same rows (raw_packets' columns,
# 1000 sources, 200 destinations, time order) loaded with one binary COPY into a table with no
# index, with raw_packets' BRIN index on ts only, with raw_packets' indexes (BRIN + the
# (src_ip, ts) and (dst_ip, ts) B-trees), and with single-column address B-trees instead.
#
#   infra/bench/pg-indexes.sh [ROWS]        (default 500000)
#
# Uses a throw-away database on $NTA_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432),
# dropped at the end. Prints seconds and rows/s per variant, and each variant against no index.
set -euo pipefail

ROWS="${1:-500000}"
URL="${NTA_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}"
DB="nta_pg_indexes_$$"
DATA="$(mktemp -d)"
chmod 777 "$DATA" # the server writes the COPY file
trap 'psql -q "$URL/postgres" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1; rm -rf "$DATA"' EXIT

psql -q "$URL/postgres" -c "CREATE DATABASE $DB" >/dev/null
export PGOPTIONS="-c client_min_messages=warning"
sql() { psql -q -X -v ON_ERROR_STOP=1 "$URL/$DB" "$@"; }

# The table's columns and the generated rows are those of crates/store/migrations/0001.
sql <<EOF
CREATE TABLE rows AS
SELECT timestamptz '2026-01-01' + i * interval '1 ms' AS ts, 'eth0'::text AS interface,
       ('10.0.' || (i % 1000 / 250) || '.' || (i % 250))::inet AS src_ip,
       ('10.1.0.' || (hashint4(i) & 255) % 200)::inet AS dst_ip,
       'TCP'::text AS protocol, 60 + (hashint4(i + 1) & 1023) AS length,
       1024 + (hashint4(i + 2) & 32767) AS src_port, 443 AS dst_port,
       'bench'::text AS agent_id, 'bench.boot.' || (i / 500) AS batch_id, i % 500 AS idx
FROM generate_series(1, $ROWS) i;
COPY rows TO '$DATA/rows.bin' (FORMAT binary);
EOF

declare -A INDEXES=(
  [1-none]=""
  [2-brin]="CREATE INDEX ON t USING brin (ts);"
  [3-raw_packets]="CREATE INDEX ON t USING brin (ts); CREATE INDEX ON t (src_ip, ts); CREATE INDEX ON t (dst_ip, ts);"
  [4-single]="CREATE INDEX ON t USING brin (ts); CREATE INDEX ON t (src_ip); CREATE INDEX ON t (dst_ip);"
)
printf '%-28s %8s %12s %8s\n' "indexes" "seconds" "rows/s" "x none"
base=""
for name in $(printf '%s\n' "${!INDEXES[@]}" | sort); do
  sql -c "DROP TABLE IF EXISTS t" -c "CREATE TABLE t (LIKE rows)" -c "${INDEXES[$name]:-SELECT 1}" >/dev/null
  sql -c CHECKPOINT
  start=$(date +%s.%N)
  sql -c "COPY t FROM '$DATA/rows.bin' (FORMAT binary)"
  end=$(date +%s.%N)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
  base="${base:-$secs}"
  awk -v n="${name#*-}" -v s="$secs" -v r="$ROWS" -v b="$base" \
    'BEGIN { printf "%-28s %8.2f %12.0f %8.2f\n", n, s, r / s, s / b }'
done
