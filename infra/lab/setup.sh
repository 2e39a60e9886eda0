#!/usr/bin/env bash
# Installs the Debian packages the attack lab (infra/lab/lab.py) needs. Idempotent: only
# missing packages are installed. Services are NOT enabled or started system-wide; lab.py runs
# its own nginx / sshd / dnsmasq / iodined (and, when a benign activity needs them, mosquitto,
# chronyd -x, opentracker, aria2c, minidlna, wireguard-go, openvpn) inside a network namespace
# from temporary configs.
set -euo pipefail
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
PKGS=(iproute2 tcpdump tshark hping3 nmap masscan hydra medusa ncrack patator slowhttptest iodine dsniff
      nginx-light openssh-server openssh-client sshpass dnsmasq-base dnsutils curl openssl
      python3 iputils-ping
      # wider benign activities (benign.py): MQTT, BitTorrent, NTP, SSDP/UPnP, VPNs, a browser
      mosquitto mosquitto-clients aria2 opentracker mktorrent chrony ntpsec-ntpdig miniupnpc minidlna
      wireguard-tools wireguard-go openvpn chromium)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then echo "lab setup: all packages present"; exit 0; fi
echo "lab setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# wireshark-common asks whether non-root users may capture; answer no without a prompt
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
$SUDO apt-get install -y -q "${missing[@]}" || { $SUDO apt-get update -q && $SUDO apt-get install -y -q "${missing[@]}"; }
# Debian starts packaged daemons on install where an init system runs; the lab needs none of
# them (and a system nginx/sshd on 0.0.0.0 would not clash: the lab binds inside its namespace)
python3 -c 'import tomllib' 2>/dev/null || { echo "lab setup: python3 >= 3.11 needed (tomllib)"; exit 1; }
echo "lab setup: done"
