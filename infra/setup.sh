#!/usr/bin/env bash
# Installs what NTA needs and starts NATS (JetStream) and PostgreSQL when none is reachable.
#
#   bash infra/setup.sh              # packages + services
#   bash infra/setup.sh --deps-only  # same (kept for .ci/run; services are part of "deps")
#
# Services already listening on 127.0.0.1:4222 / :5432 are used as they are. Otherwise a
# private instance is started with its data under .nta/ in the checkout (nothing system-wide
# is reconfigured). Idempotent: running it again only starts what stopped.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="$ROOT/.nta"
mkdir -p "$STATE"
NATS_PORT="${NTA_NATS_PORT:-4222}"
PG_PORT="${NTA_PG_PORT:-5432}"

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_install() {
  local missing=()
  for spec in "$@"; do
    local cmd="${spec%%:*}" pkg="${spec##*:}"
    if [ "$cmd" = "$pkg" ]; then
      dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    else
      command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y -q "${missing[@]}" >"$STATE/apt.log" 2>&1; then
    $SUDO apt-get update -q >>"$STATE/apt.log" 2>&1
    $SUDO apt-get install -y -q "${missing[@]}" >>"$STATE/apt.log" 2>&1 || {
      tail -20 "$STATE/apt.log" >&2; log "apt-get failed (log: $STATE/apt.log)"; exit 1; }
  fi
}

# command:package pairs (a bare name is checked with dpkg).
apt_install nats-server:nats-server psql:postgresql-client libpcap-dev tshark:tshark \
  tcpdump:tcpdump ip:iproute2 ping:iputils-ping pkg-config:pkg-config \
  chromium:chromium chromedriver:chromium-driver
# Prometheus and promtool for the monitoring kit's checks and test (its service is not started).
bash "$ROOT/infra/monitoring/install-prometheus.sh"
# The server binaries also when a server already listens: the TLS tests start a private one.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt_install postgres:postgresql
fi

NATS_BIN="$(command -v nats-server || echo /usr/sbin/nats-server)"
if port_open "$NATS_PORT"; then
  log "NATS already listening on 127.0.0.1:$NATS_PORT"
else
  log "starting nats-server with JetStream on 127.0.0.1:$NATS_PORT (store: $STATE/nats)"
  mkdir -p "$STATE/nats"
  nohup "$NATS_BIN" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$STATE/nats" >"$STATE/nats.log" 2>&1 &
  for _ in $(seq 50); do port_open "$NATS_PORT" && break; sleep 0.1; done
  port_open "$NATS_PORT" || { cat "$STATE/nats.log" >&2; log "nats-server did not start"; exit 1; }
fi

if port_open "$PG_PORT"; then
  log "PostgreSQL already listening on 127.0.0.1:$PG_PORT"
else
  PGBIN="$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")"
  PGDATA="$STATE/pg"
  # PostgreSQL refuses to run as root: the private instance belongs to the postgres user.
  RUNAS=()
  if [ "$(id -u)" -eq 0 ]; then RUNAS=(runuser -u postgres --); fi
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    log "creating a private PostgreSQL instance in $PGDATA (trust auth on 127.0.0.1 only)"
    mkdir -p "$PGDATA"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    "${RUNAS[@]}" "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust >"$STATE/initdb.log" 2>&1
  fi
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w start \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k /tmp" >/dev/null
fi

if ! psql "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -tAc 'select 1' >/dev/null 2>&1; then
  log "PostgreSQL on :$PG_PORT does not accept user postgres without a password."
  log "Set NTA_DATABASE_URL (and NTA_TEST_PG_URL for the tests) to a URL with credentials."
fi
log "ready: NATS nats://127.0.0.1:$NATS_PORT, PostgreSQL postgres://postgres@127.0.0.1:$PG_PORT"
