#!/usr/bin/env bash
# Installs Debian's `prometheus` package (prometheus + promtool) unless promtool is there, for
# check.sh and the Prometheus integration test (crates/nta/tests/monitoring.rs). Called by
# infra/setup.sh. The package's service is not started by the install: the tests start their own
# Prometheus on free ports, and a system one on 9090 is nobody's business here. Recommended
# packages (node exporter on 9100) are left out.
set -euo pipefail
command -v promtool >/dev/null 2>&1 && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
LOG="$(mktemp)"

# invoke-rc.d / deb-systemd-invoke ask policy-rc.d before starting a service; 101 = "no".
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=""
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  ADDED_POLICY=1
fi
cleanup() { [ -n "$ADDED_POLICY" ] && $SUDO rm -f "$POLICY"; rm -f "$LOG"; }
trap cleanup EXIT

echo "monitoring: installing prometheus (Debian package, service not started)" >&2
export DEBIAN_FRONTEND=noninteractive
install() { $SUDO apt-get install -y -q --no-install-recommends prometheus >>"$LOG" 2>&1; }
if ! install; then
  $SUDO apt-get update -q >>"$LOG" 2>&1
  install || { tail -20 "$LOG" >&2; echo "monitoring: apt-get install prometheus failed" >&2; exit 1; }
fi
command -v promtool >/dev/null
