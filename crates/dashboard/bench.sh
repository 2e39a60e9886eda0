#!/usr/bin/env bash
# Dashboard load benchmark: 10 M raw packets + 1 M windows in a throw-away database (needs the
# test PostgreSQL of infra/setup.sh, NTA_TEST_PG_URL), then p50/p95/max of the default API views.
# Smaller: NTA_BENCH_PACKETS=1000000 NTA_BENCH_WINDOWS=100000 bash crates/dashboard/bench.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo test -p dashboard --release --test it perf:: -- --ignored --nocapture --test-threads=1
