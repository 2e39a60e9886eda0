#!/usr/bin/env bash
# Stage boundaries, checked on the resolved dependency graph: data flows one way
# (agent -> ingestor / windower -> predictor -> dashboard) and a stage never depends on
# another stage; PostgreSQL is the `store` crate's, NATS the `bus` crate's, messages `wire`'s.
# Only the `nta` binary (and the `train`, `rescore` and `bench` tools) put stages together.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
# forbid CRATE DEP... : CRATE's normal (non-dev) dependency tree must not contain any DEP.
forbid() {
  local crate=$1; shift
  local deps
  deps=$(cargo tree -q -p "$crate" -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
  for dep in "$@"; do
    if grep -qx "$dep" <<<"$deps"; then
      echo "dependency edge violation: $crate depends on $dep" >&2
      cargo tree -q -p "$crate" -e normal -i "$dep" >&2 || true
      fail=1
    fi
  done
}

# forbid_direct CRATE DEP... : CRATE may not name DEP in its own [dependencies].
forbid_direct() {
  local crate=$1; shift
  local deps
  deps=$(cargo tree -q -p "$crate" -e normal --depth 1 --prefix none --format '{p}' | tail -n +2 | awk '{print $1}' | sort -u)
  for dep in "$@"; do
    if grep -qx "$dep" <<<"$deps"; then
      echo "dependency edge violation: $crate uses $dep directly (go through store / bus)" >&2
      fail=1
    fi
  done
}

forbid wire      bus store async-nats tokio-postgres agent ingestor windower predictor dashboard
forbid bus       store tokio-postgres agent ingestor windower predictor dashboard
forbid store     bus async-nats agent ingestor windower predictor dashboard
forbid agent     store tokio-postgres ingestor windower predictor dashboard
forbid ingestor  agent windower predictor dashboard pcap
forbid windower  agent ingestor predictor dashboard pcap
forbid predictor agent ingestor windower dashboard pcap
# The dashboard reaches libpcap only through `forensics` (BPF filters of pcap downloads).
forbid dashboard agent ingestor windower predictor rescore
forbid_direct dashboard pcap
# The notifier reads alert events from NATS only: no database, no other stage.
forbid notifier  store tokio-postgres agent ingestor windower predictor dashboard rescore forensics pcap
forbid forensics agent ingestor windower predictor dashboard rescore
# Re-scoring composes the windower and predictor libraries; it reads NATS and PostgreSQL through
# bus and store only and never captures.
forbid rescore   agent ingestor dashboard pcap
forbid_direct rescore tokio-postgres async-nats
forbid_direct nta tokio-postgres async-nats

if [ "$fail" -ne 0 ]; then
  echo "stage boundaries: FAILED" >&2
  exit 1
fi
echo "stage boundaries: ok"
