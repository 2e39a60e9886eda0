#!/usr/bin/env bash
# First run on a fresh machine: install and start what is missing, build, and replay the bundled
# sample capture through agent -> NATS JetStream -> ingestor -> PostgreSQL, then print what landed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash infra/setup.sh
cargo build --release -p nta
CAPTURE="${1:-testdata/pcaps/ssh_brute-guessing.pcap}"
exec ./target/release/nta run --target all --read "$CAPTURE" --metrics-addr "${NTA_METRICS_ADDR:-127.0.0.1:9464}"
