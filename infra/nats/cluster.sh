#!/usr/bin/env bash
# A local 3-node NATS JetStream cluster for NTA, from infra/nats/cluster/n{1,2,3}.conf:
# clients on 127.0.0.1:4222-4224, routes on 6222-6224, monitoring on 8222-8224, streams under
# .nta/nats/ in the checkout.
#
#   infra/nats/cluster.sh start    # starts the nodes not running, waits for a JetStream leader
#   infra/nats/cluster.sh status   # nodes, meta leader, and NTA's streams when `nta` is built
#   infra/nats/cluster.sh stop     # stops the nodes started here (their data stays in .nta/nats)
#
# Then: NTA_NATS_URL=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224 \
#       nta run --target all --stream-replicas 3 ...
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=.nta/nats
NODES=(1 2 3)
URLS=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224

pid_of() { # the pid of node $1 if it runs, else nothing
  local f=$DIR/n$1.pid
  [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f" || true
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

meta_leader() { # the JetStream meta leader as node $1 sees it ("" while there is none)
  local body
  body=$( (exec 3<>"/dev/tcp/127.0.0.1/$((8221 + $1))" && printf 'GET /jsz HTTP/1.0\r\n\r\n' >&3 && cat <&3) 2>/dev/null || true)
  echo "$body" | tr -d ' \n' | sed -n 's/.*"meta_cluster":{[^}]*"leader":"\([^"]*\)".*/\1/p'
}

start() {
  command -v nats-server >/dev/null || { echo "nats-server not found (infra/setup.sh installs it)" >&2; exit 1; }
  mkdir -p "$DIR"
  for n in "${NODES[@]}"; do
    if [ -n "$(pid_of "$n")" ]; then echo "n$n already running (pid $(pid_of "$n"))"; continue; fi
    for port in $((4221 + n)) $((6221 + n)) $((8221 + n)); do
      if listening "$port"; then
        echo "127.0.0.1:$port is taken by another process (a single nats-server from infra/setup.sh?)" >&2
        exit 1
      fi
    done
    nats-server -c "infra/nats/cluster/n$n.conf" >>"$DIR/n$n.log" 2>&1 &
    echo $! >"$DIR/n$n.pid"
    echo "n$n started (pid $!, log $DIR/n$n.log)"
  done
  for _ in $(seq 150); do
    local leader ready=1
    for n in "${NODES[@]}"; do
      leader=$(meta_leader "$n")
      [ -n "$leader" ] || ready=0
    done
    if [ $ready = 1 ]; then
      echo "JetStream cluster ready, meta leader $leader; NTA_NATS_URL=$URLS"
      return
    fi
    sleep 0.2
  done
  echo "no JetStream meta leader after 30 s; see $DIR/n*.log" >&2
  exit 1
}

status() {
  for n in "${NODES[@]}"; do
    local pid
    pid=$(pid_of "$n")
    if [ -n "$pid" ]; then
      echo "n$n: running (pid $pid), meta leader: $(meta_leader "$n")"
    else
      echo "n$n: stopped"
    fi
  done
  local nta=${NTA_BIN:-target/release/nta}
  [ -x "$nta" ] || nta=target/debug/nta
  if [ -x "$nta" ]; then "$nta" streams --nats-url "$URLS" || true; fi
}

stop() {
  for n in "${NODES[@]}"; do
    local pid
    pid=$(pid_of "$n")
    [ -n "$pid" ] || continue
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$DIR/n$n.pid"
    echo "n$n stopped"
  done
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
