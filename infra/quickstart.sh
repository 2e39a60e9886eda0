#!/usr/bin/env bash
# First run on a fresh machine: install and start what is missing, build, and replay a bundled
# capture through every role (agent -> NATS JetStream -> ingestor, windower -> predictor ->
# alerts), print what landed and the alerts, and serve the dashboard.
#   bash infra/quickstart.sh [CAPTURE]     (default: Zeek's SSH password-guessing trace)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash infra/setup.sh
# NTA_BIN: a binary built already (the test of this script uses the debug one).
NTA="${NTA_BIN:-}"
if [ -z "$NTA" ]; then
  cargo build --release -p nta
  NTA=./target/release/nta
fi
CAPTURE="${1:-testdata/pcaps/ssh_brute-guessing.pcap}"
# The dashboard signs browsers in with this password (generated once, kept in .nta/).
if [ -z "${NTA_DASHBOARD_PASSWORD:-}" ]; then
  [ -s .nta/dashboard-password ] || head -c 12 /dev/urandom | base64 | tr -d '/+=' > .nta/dashboard-password
  NTA_DASHBOARD_PASSWORD="$(cat .nta/dashboard-password)"
fi
export NTA_DASHBOARD_PASSWORD
echo "dashboard password: $NTA_DASHBOARD_PASSWORD (from .nta/dashboard-password or NTA_DASHBOARD_PASSWORD)"
# Every role in one process: replay the capture, print what landed and the alerts, then keep
# the dashboard up until Ctrl-C. The dashboard link it prints opens the range around the
# capture's packets (a replay is rarely from the last hour).
exec "$NTA" run --target all --read "$CAPTURE" --metrics-addr "${NTA_METRICS_ADDR:-127.0.0.1:9464}"
