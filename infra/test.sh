#!/usr/bin/env bash
# Runs every test against real services: each test starts its own nats-server (JetStream, temp
# store, free port) and creates/drops its own PostgreSQL database.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash infra/setup.sh
# Real attack tools for the lab smoke test (hping3, nmap, hydra, ...).
bash infra/lab/setup.sh
# fmt, clippy -D warnings, unused dependencies, stage boundaries.
bash infra/lint.sh
# Monitoring kit: Prometheus config, rules and their unit tests, Grafana dashboards (a few s).
bash infra/monitoring/check.sh
# Integration tests drive the real binary.
cargo build -p nta
# The Debian package of that build installed and checked (units, user, model, capture
# capabilities, removal) and the compose file validated: README, Installing.
bash infra/packaging/check.sh
cargo test --workspace "$@"
# A short fuzzing pass over every parser of untrusted bytes (nightly + cargo-fuzz; the long
# runs are `bash infra/fuzz.sh 3600`). 15 s per target: crashes found so far took seconds.
bash infra/fuzz.sh 15
