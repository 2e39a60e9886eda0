#!/usr/bin/env bash
# Install check of the Debian package and validation of the container files (README, Installing):
# builds the .deb with cargo-deb, installs it with dpkg, and checks what an operator relies on:
# `nta --version`, the units pass `systemd-analyze verify`, the nta user exists, the installed
# binary finds the packaged model by itself (as user nta), the agent captures as user nta with
# exactly the capabilities of nta@agent.service.d/capture.conf (and not without them), then
# `dpkg -r` and `dpkg -P` leave nothing behind. Last, `docker-compose config` validates
# infra/compose/compose.yaml (no container engine runs here: the stack is not started).
#
#   bash infra/packaging/check.sh                 # CI: package of the debug build (see NTA_DEB_PROFILE)
#   NTA_DEB_PROFILE=release bash infra/packaging/check.sh
#
# Root only (dpkg); it installs cargo-deb, systemd-analyze and docker-compose when missing. It
# leaves the package purged: /usr/bin/nta of a real installation would be replaced, so it
# skips where an nta package is installed unless NTA_PACKAGING_REPLACE=1 (under CI=true, both
# are failures).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
# CI packages the debug build it already made (cargo-deb reuses it: seconds); `release` is what
# real packages are built with (thin LTO: many minutes on a small machine).
PROFILE="${NTA_DEB_PROFILE:-dev}"
CAPTURE=testdata/pcaps/ssh_brute-guessing.pcap
MODEL=/usr/share/nta/models/default.nta-model
T0=$SECONDS

log() { printf '\033[1mpackaging:\033[0m %s (%ss)\n' "$*" "$((SECONDS - T0))" >&2; }
fail() { printf '\033[1;31mpackaging: FAILED:\033[0m %s\n' "$*" >&2; exit 1; }

# Outside CI (CI=true, root), a developer's `infra/test.sh` skips what it must not do.
skip() { [ "${CI:-}" = true ] && fail "$1"; log "skipped: $1"; exit 0; }
[ "$(id -u)" -eq 0 ] || skip "needs root (dpkg -i)"
if dpkg -s nta >/dev/null 2>&1 && [ "${NTA_PACKAGING_REPLACE:-}" != 1 ]; then
  skip "an nta package is installed; this check replaces and purges it (NTA_PACKAGING_REPLACE=1 to allow)"
fi

export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=300 -y -q "$@" >>/tmp/nta-packaging-apt.log 2>&1; }
missing=()
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v nats-server >/dev/null || missing+=(nats-server)
command -v curl >/dev/null || missing+=(curl)
command -v ping >/dev/null || missing+=(iputils-ping)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt_get install "${missing[@]}" || { apt_get update && apt_get install "${missing[@]}"; } ||
    { tail -20 /tmp/nta-packaging-apt.log >&2; fail "apt-get install ${missing[*]}"; }
fi
if ! command -v cargo-deb >/dev/null; then
  log "installing cargo-deb from crates.io"
  # Pinned: 3.8 packages the dev profile with a warning that a later version may refuse it.
  cargo install --locked --quiet cargo-deb --version 3.8.0
  log "cargo-deb installed"
fi

# --- build -------------------------------------------------------------------------------
log "cargo deb -p nta --profile $PROFILE"
rm -rf target/debian
if [ "$PROFILE" = release ]; then
  # Debug info (profile.release has line tables) goes to nta-dbgsym_*.ddeb: a 6 MB package, not 25.
  cargo deb -p nta --locked --dbgsym
else
  # --fast: less compression, the package is thrown away right after.
  cargo deb -p nta --locked --profile "$PROFILE" --fast
fi
DEB=$(ls target/debian/nta_*.deb)
log "built $DEB ($(du -h "$DEB" | cut -f1))"

# --- install ------------------------------------------------------------------------------
if ! dpkg -i "$DEB" >/tmp/nta-packaging-dpkg.log 2>&1; then
  log "dpkg -i left dependencies unmet; apt-get -f install"
  apt_get -f install || { tail -20 /tmp/nta-packaging-apt.log >&2; fail "apt-get -f install"; }
fi
dpkg -s nta | grep -q '^Status: install ok installed' || { cat /tmp/nta-packaging-dpkg.log >&2; fail "not installed"; }
depends=$(dpkg-query -W -f='${Depends}' nta)
recommends=$(dpkg-query -W -f='${Recommends}' nta)
log "installed; Depends: $depends; Recommends: $recommends"
grep -q 'libpcap0.8' <<<"$depends" || fail "Depends lacks libpcap0.8"
{ grep -q 'nats-server' <<<"$recommends" && grep -q postgresql <<<"$recommends"; } || fail "Recommends: $recommends"
for f in /etc/nta/nta.env /etc/nta/nta.toml; do
  dpkg-query -W -f='${Conffiles}' nta | grep -q " $f " || fail "$f is not a conffile"
done
[ "$(stat -c %a /etc/nta/nta.env)" = 600 ] || fail "/etc/nta/nta.env should be 0600 (secrets)"

version=$(nta --version)
[ "$(command -v nta)" = /usr/bin/nta ] || fail "nta resolves to $(command -v nta), not /usr/bin/nta"
[ "$version" = "nta $(dpkg-query -W -f='${Version}' nta | sed 's/-[0-9]*$//')" ] || fail "nta --version: $version"
log "$version"

# --- user ---------------------------------------------------------------------------------
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd nta) || fail "no user nta"
[ "$uid" -lt 1000 ] || fail "nta is not a system user (uid $uid)"
getent group nta >/dev/null || fail "no group nta"
log "user nta: uid $uid, home $home, shell $shell"

# --- systemd units ------------------------------------------------------------------------
# systemd is not PID 1 here: verify loads the unit files offline. A template is verified
# through instances; agent's also loads the capture drop-in. --man=no: no man pages installed.
units=(nta@ingestor.service nta@agent.service nta@dashboard.service)
if ! out=$(cd /lib/systemd/system && systemd-analyze verify --man=no "${units[@]}" 2>&1); then
  echo "$out" >&2
  fail "systemd-analyze verify"
fi
# Any complaint about our units is a failure (verify also reports unrelated units it loads).
if grep -i 'nta@' <<<"$out"; then fail "systemd-analyze verify warns about the units"; fi
# What the units grant, as systemd reads them (drop-in merged): `security --offline` marks a
# restriction in force with ✓ and a right granted with ✗.
security() { (cd /lib/systemd/system && systemd-analyze security --offline=true "$1" 2>/dev/null) || true; }
expect() { # expect UNIT MARK SETTING...
  local unit=$1 mark=$2 out
  out=$(security "$unit")
  shift 2
  for s in "$@"; do
    grep -qF "$mark $s" <<<"$out" || { echo "$out" >&2; fail "$unit: expected '$mark $s'"; }
  done
}
same=("User=/DynamicUser=" "NoNewPrivileges=" "ProtectSystem=" "ProtectHome=" "PrivateDevices=" "CapabilityBoundingSet=~CAP_SYS_ADMIN")
capture=("AmbientCapabilities=" "CapabilityBoundingSet=~CAP_NET_ADMIN" "RestrictAddressFamilies=~AF_PACKET")
expect nta@ingestor.service ✓ "${same[@]}" "${capture[@]}"
expect nta@agent.service ✓ "${same[@]}"
expect nta@agent.service ✗ "${capture[@]}"
for u in nta@ingestor.service nta@agent.service; do
  log "$u verified; $(security "$u" | tail -1)"
done

# --- the packaged model, found by the installed binary as user nta ------------------------
work=$(mktemp -d)
cleanup() {
  for pid in ${agent_pid:-} ${nats_pid:-}; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cp "$CAPTURE" "$work/capture.pcap"
chmod -R a+rX "$work"
# From / and without NTA_MODEL, so neither the working directory nor the environment helps.
if ! (cd / && env -u NTA_MODEL NO_COLOR=1 runuser -u nta -- nta analyze "$work/capture.pcap" >"$work/analyze.out" 2>"$work/analyze.err"); then
  cat "$work/analyze.err" >&2
  fail "nta analyze as user nta"
fi
grep 'model loaded' "$work/analyze.err" | grep -qF "$MODEL" || { cat "$work/analyze.err" >&2; fail "the packaged model was not the one loaded"; }
grep -q ssh_brute "$work/analyze.out" || { cat "$work/analyze.out" >&2; fail "no ssh_brute verdict"; }
log "nta analyze as nta loaded $MODEL: $(grep -m1 'windows from' "$work/analyze.err")"

# --- the shipped configuration templates name real settings ------------------------------
# Every variable nta.env shows is in the settings table, and with all the examples of nta.env
# and nta.toml uncommented, `nta config` accepts them (it rejects unknown keys and bad values).
known=$(nta config --markdown | awk -F'|' 'NR > 2 { gsub(/[ `]/, "", $4); print $4 }')
examples=$(grep '^#NTA_[A-Z0-9_]*=' /etc/nta/nta.env | sed 's/^#//')
[ -n "$examples" ] || fail "nta.env shows no variable"
while IFS= read -r line; do
  grep -qx "${line%%=*}" <<<"$known" || fail "nta.env names ${line%%=*}, which is no setting"
done <<<"$examples"
sed -n 's/^# \(\[[a-z]*\]\|[a-z_]* = .*\)$/\1/p' /etc/nta/nta.toml >"$work/examples.toml"
grep -q = "$work/examples.toml" || fail "nta.toml shows no example"
if ! (while IFS= read -r line; do export "${line?}"; done <<<"$examples"
  nta --config "$work/examples.toml" config >"$work/config.out" 2>&1); then
  cat "$work/config.out" >&2
  fail "the examples of nta.env and nta.toml do not load"
fi
log "nta.env and nta.toml examples load ($(grep -c . <<<"$examples") variables, $(grep -c = "$work/examples.toml") keys)"

# --- capture as nta with the drop-in's capabilities ---------------------------------------
# What systemd grants nta@agent (AmbientCapabilities of the drop-in), applied with setpriv
# (systemd cannot run units here): live capture on lo must work with them and fail without.
caps=$(sed -n 's/^AmbientCapabilities=//p' /lib/systemd/system/nta@agent.service.d/capture.conf)
[ -n "$caps" ] || fail "the capture drop-in grants no capability"
setcaps=$(for c in $caps; do c=${c#CAP_}; printf ',+%s' "${c,,}"; done)
setcaps=${setcaps#,}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nats_port=$(free_port)
mkdir -p "$work/nats"
nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$work/nats" >"$work/nats.log" 2>&1 &
nats_pid=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.1; done
chown -R nta "$work"
agent() { # agent CAPS: becomes a live-capture agent on lo as user nta with capabilities CAPS
  local caps=$1
  # exec: the caller's $! (or subshell) is then the agent (timeout passes a kill on to it),
  # which ends in 60 s at most even if capture without capabilities were to work.
  exec timeout 60 env "NTA_NATS_URL=nats://127.0.0.1:$nats_port" "NTA_METRICS_ADDR=127.0.0.1:$metrics_port" NTA_STREAM_MAX_GB=0.01 \
    NTA_FRAMES_MAX_GB=0.01 setpriv --reuid nta --regid nta --init-groups --no-new-privs \
    --inh-caps "-all${caps:+,$caps}" --ambient-caps "-all${caps:+,$caps}" --bounding-set "-all${caps:+,$caps}" \
    nta run --target agent --interface lo --agent-id pkgcheck --bpf 'icmp'
}
metrics_port=$(free_port)
if (agent "") >"$work/nocap.log" 2>&1; then fail "the agent captured without capabilities: the check proves nothing"; fi
grep -qi 'permit' "$work/nocap.log" || { cat "$work/nocap.log" >&2; fail "the agent without capabilities failed otherwise"; }
agent "$setcaps" >"$work/agent.log" 2>&1 &
agent_pid=$!
captured=0
for _ in $(seq 100); do
  ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1 || true
  # Refused until the agent serves its metrics: not an error yet.
  captured=$( (curl -fs "http://127.0.0.1:$metrics_port/metrics" 2>/dev/null || true) |
    awk '$1 == "nta_agent_frames_captured_total" { print $2 }')
  [ "${captured:-0}" != 0 ] && break
  kill -0 "$agent_pid" 2>/dev/null || break
  sleep 0.2
done
kill "$agent_pid" 2>/dev/null || true
wait "$agent_pid" 2>/dev/null || true
agent_pid=
[ "${captured:-0}" != 0 ] || { cat "$work/agent.log" >&2; fail "no frame captured as nta with $caps"; }
log "agent as nta with $caps captured $captured frames on lo (and was refused without them)"
kill "$nats_pid"
wait "$nats_pid" 2>/dev/null || true
nats_pid=

# --- remove, purge ------------------------------------------------------------------------
dpkg -r nta >/tmp/nta-packaging-dpkg.log 2>&1 || { cat /tmp/nta-packaging-dpkg.log >&2; fail "dpkg -r"; }
{ [ ! -e /usr/bin/nta ] && [ ! -e /lib/systemd/system/nta@.service ] && [ ! -e $MODEL ]; } || fail "dpkg -r left files"
[ -f /etc/nta/nta.env ] || fail "dpkg -r removed the conffiles (only purge should)"
dpkg -P nta >/tmp/nta-packaging-dpkg.log 2>&1 || { cat /tmp/nta-packaging-dpkg.log >&2; fail "dpkg -P"; }
{ [ ! -e /etc/nta ] && [ ! -e /var/lib/nta ]; } || fail "dpkg -P left /etc/nta or /var/lib/nta"
! dpkg -s nta >/dev/null 2>&1 || fail "nta still known to dpkg after purge"
log "removed and purged cleanly (the nta user stays, as Debian keeps system users)"

# --- container files ----------------------------------------------------------------------
# The engine's own parser and schema; the images are not built and the stack not started.
compose() { docker-compose -f infra/compose/compose.yaml "$@"; }
NTA_DASHBOARD_PASSWORD=check compose config -q || fail "docker-compose config"
# The dashboard listens beyond loopback in its container: no password, no stack.
if env -u NTA_DASHBOARD_PASSWORD docker-compose -f infra/compose/compose.yaml config -q 2>/dev/null; then
  fail "compose.yaml accepted an unset NTA_DASHBOARD_PASSWORD"
fi
services=$(NTA_DASHBOARD_PASSWORD=check compose config --services | sort | tr '\n' ' ')
for s in nats1 nats2 nats3 postgres agent agent-live ingestor windower predictor dashboard notifier prometheus grafana; do
  grep -qw -- "$s" <<<"$services" || fail "compose.yaml lacks service $s (has: $services)"
done
# Prometheus' own check of the stack's scrape configuration, where promtool is installed
# (infra/setup.sh installs Debian's prometheus for the monitoring tests).
if command -v promtool >/dev/null; then
  promtool check config --syntax-only infra/compose/prometheus.yml >/dev/null || fail "promtool check config"
  log "infra/compose/prometheus.yml valid (promtool)"
else
  log "infra/compose/prometheus.yml not checked: no promtool"
fi
log "infra/compose/compose.yaml valid ($(docker-compose version --short 2>/dev/null || echo docker-compose))"
log "all package checks passed"
