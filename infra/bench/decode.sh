#!/usr/bin/env bash
# Decode throughput: NTA's decoder (+ MessagePack batch encoding, one thread) against tshark
# extracting the same fields from the same synthetic capture, and the whole `nta decode` path.
#
#   infra/bench/decode.sh [FRAMES] [CAPTURE]
#
# FRAMES defaults to 2000000; CAPTURE defaults to $TMPDIR/nta-decode-bench-FRAMES.pcap and is
# generated (deterministically) when missing. Needs tshark on PATH. NTA_BIN=/path/to/nta skips
# the build and uses that binary.
set -euo pipefail

FRAMES="${1:-2000000}"
CAPTURE="${2:-${TMPDIR:-/tmp}/nta-decode-bench-${FRAMES}.pcap}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
NTA="${NTA_BIN:-$TARGET/release/nta}"

command -v tshark >/dev/null || { echo "tshark not found (apt-get install tshark)" >&2; exit 1; }

if [[ -z "${NTA_BIN:-}" ]]; then
    echo "== building release nta"
    (cd "$ROOT" && cargo build --release -p nta)
fi

if [[ ! -s "$CAPTURE" ]]; then
    echo "== generating $FRAMES frames into $CAPTURE"
    "$NTA" bench gen-pcap --frames "$FRAMES" -o "$CAPTURE"
fi

echo "== nta bench decode"
NTA_OUT="$("$NTA" bench decode --file "$CAPTURE")"
echo "$NTA_OUT"
# First "= X.XX M frames/s" of the report is decode+encode in memory.
NTA_MFPS="$(grep -m1 -oE '= [0-9.]+ M frames/s' <<<"$NTA_OUT" | grep -oE '[0-9.]+')"
N="$(grep -m1 -oE '\(([0-9]+) frames' <<<"$NTA_OUT" | grep -oE '[0-9]+')"
# The whole `nta decode --format msgpack -o /dev/null` path (two threads), file to output.
CMD_MFPS="$(grep 'nta decode --format msgpack' <<<"$NTA_OUT" | grep -oE '= [0-9.]+ M frames/s' | grep -oE '[0-9.]+')"

echo "== tshark (same fields, one pass, output discarded)"
FIELDS=(frame.time_epoch frame.len eth.src eth.dst vlan.id ip.src ip.dst ipv6.src ipv6.dst ip.proto
        tcp.srcport tcp.dstport udp.srcport udp.dstport tcp.flags tcp.seq_raw tcp.ack_raw
        icmp.type icmp.code icmpv6.type icmpv6.code arp.opcode arp.src.proto_ipv4 arp.dst.proto_ipv4
        arp.src.hw_mac arp.dst.hw_mac dns.flags.response dns.qry.name dns.qry.type dns.count.answers
        dns.resp.len http.request.method http.request.uri http.response.code http.host
        ssh.protocol tls.record.content_type tls.handshake.extensions_server_name quic.long.packet_type)
ARGS=()
for f in "${FIELDS[@]}"; do ARGS+=(-e "$f"); done
START=$(date +%s.%N)
tshark -n -r "$CAPTURE" -o ip.defragment:FALSE -o ipv6.defragment:FALSE \
    -o tcp.desegment_tcp_streams:FALSE -o tcp.relative_sequence_numbers:FALSE \
    -T fields -E occurrence=f "${ARGS[@]}" > /dev/null 2>&1
END=$(date +%s.%N)
TSHARK_SECS=$(awk -v a="$START" -v b="$END" 'BEGIN { print b - a }')
TSHARK_MFPS=$(awk -v n="$N" -v s="$TSHARK_SECS" 'BEGIN { print n / s / 1e6 }')
RATIO=$(awk -v a="$NTA_MFPS" -v b="$TSHARK_MFPS" 'BEGIN { print a / b }')

printf '\n%-32s %10s\n' "" "M frames/s"
printf '%-32s %10.3f\n' "nta decode+encode (1 thread)" "$NTA_MFPS"
printf '%-32s %10.3f   (%.2fx the line above)\n' "nta decode -o /dev/null" "$CMD_MFPS" \
    "$(awk -v a="$CMD_MFPS" -v b="$NTA_MFPS" 'BEGIN { print a / b }')"
printf '%-32s %10.3f   (%.1f s)\n' "tshark -T fields" "$TSHARK_MFPS" "$TSHARK_SECS"
printf '%-32s %10.1fx\n' "ratio nta / tshark" "$RATIO"
