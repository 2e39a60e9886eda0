#!/usr/bin/env python3
"""Checks a lab run with tshark: for every label line, counts the packets its sources sent
inside its time span and the class's evidence (SYNs of a SYN flood, poisoned ARP replies,
iodine's NULL/TXT/... queries, hydra's SSH connections, ...). Prints a table per variation and
a per-class summary, and writes check.json into the run directory.

    python3 infra/lab/check.py .nta/lab/<run-id> [--only TEXT]
"""
import argparse
import collections
import json
import os
import subprocess
import sys

FIELDS = ["frame.time_epoch", "eth.src", "ip.src", "ip.dst", "tcp.dstport", "tcp.flags.syn",
          "tcp.flags.ack", "tcp.flags.reset", "udp.dstport", "icmp.type", "arp.opcode",
          "arp.src.proto_ipv4", "dns.qry.type", "dns.flags.response", "http.request.method",
          "http.response.code", "frame.len", "dns.qry.name", "tls.handshake.type", "bittorrent.msg.type",
          "bittorrent.protocol.name", "ntp.flags.mode", "wg.type"]
WG_TYPES = {"1": "handshake_init", "2": "handshake_resp", "3": "cookie", "4": "data"}
QTYPES = {"1": "A", "5": "CNAME", "10": "NULL", "12": "PTR", "15": "MX", "16": "TXT", "28": "AAAA", "33": "SRV",
          "65": "HTTPS", "255": "ANY"}


def frames(pcap):
    """One dict per frame; reassembly off so each frame stands alone (as NTA decodes them)."""
    cmd = ["tshark", "-n", "-r", pcap, "-o", "tcp.desegment_tcp_streams:FALSE", "-o", "ip.defragment:FALSE",
           "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"] + [x for f in FIELDS for x in ("-e", f)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        yield dict(zip(FIELDS, line.split("\t")))


def evidence(cls, fr, lbl):
    """Class-specific counters over the frames the label covers (sent by its sources)."""
    c = collections.Counter()
    victims = set(lbl["target_ips"])
    for f in fr:
        syn, ack = f["tcp.flags.syn"] in ("1", "True"), f["tcp.flags.ack"] in ("1", "True")
        if f["tcp.dstport"] and syn and not ack:
            c["tcp_syn"] += 1
            if cls in ("ssh_brute", "slowloris", "Normal"):  # connections opened, per service
                c[f"syn_to_{f['tcp.dstport']}"] += 1
        if f["udp.dstport"] and f["ip.dst"] in victims:
            c["udp_to_victim"] += 1
        if f["icmp.type"] == "8":
            c["icmp_echo_req"] += 1
        if f["arp.opcode"] == "2":
            c["arp_reply"] += 1
            if f["arp.src.proto_ipv4"] not in lbl.get("attacker_ips", []):
                c["arp_reply_claiming_other_ip"] += 1
        if f["dns.qry.type"] and f["dns.flags.response"] in ("0", "False"):
            c[f"dns_query_{QTYPES.get(f['dns.qry.type'], f['dns.qry.type'])}"] += 1
        if f["http.request.method"] in ("M-SEARCH", "NOTIFY"):  # SSDP rides on HTTP's syntax
            c[f"ssdp_{f['http.request.method'].lower()}"] += 1
        elif f["http.request.method"]:
            c["http_requests"] += 1
        if f["tls.handshake.type"] == "1":
            c["tls_client_hello"] += 1
        if f["bittorrent.protocol.name"]:
            c["bittorrent_handshake"] += 1
        if f["bittorrent.msg.type"] == "7":
            c["bittorrent_piece"] += 1
        if f["ntp.flags.mode"] == "3":
            c["ntp_client_req"] += 1
        if f["wg.type"]:
            c[f"wireguard_{WG_TYPES.get(f['wg.type'], f['wg.type'])}"] += 1
        if f["udp.dstport"] in ("1194", "1195"):
            c["openvpn_udp"] += 1
        if f["udp.dstport"] == "6771":
            c["bittorrent_lpd"] += 1
    if cls == "port_scan":
        c["distinct_dst_ports"] = len({f["tcp.dstport"] or f["udp.dstport"] for f in fr} - {""})
    c["distinct_src_ips"] = len({f["ip.src"] for f in fr} - {""})
    if cls == "Normal":
        queries = {f["dns.qry.name"] for f in fr if f["dns.flags.response"] in ("0", "False")}
        c["dns_distinct_names"] = len(queries - {""})
        c["mbytes_sent"] = round(sum(int(f["frame.len"] or 0) for f in fr) / 1e6)
    return {k: v for k, v in c.items() if v}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--only")
    a = ap.parse_args()
    labels = [json.loads(line) for line in open(os.path.join(a.run, "labels.jsonl"))]
    if a.only:
        labels = [x for x in labels if a.only in x["variation"]]
    by_cap = collections.defaultdict(list)
    for lbl in labels:
        by_cap[lbl["capture"]].append(lbl)
    results, per_class = [], collections.defaultdict(lambda: collections.Counter())
    for cap, lbls in by_cap.items():
        allf = list(frames(os.path.join(a.run, cap)))
        for lbl in lbls:
            macs = set(lbl["attacker_macs"])
            s, e = lbl["start_epoch"], lbl["end_epoch"]
            fr = [f for f in allf if f["eth.src"] in macs and s <= float(f["frame.time_epoch"]) <= e + 1]
            ev = evidence(lbl["class"], fr, lbl)
            row = {"variation": lbl["variation"], "class": lbl["class"], "capture_packets": len(allf),
                   "source_packets": len(fr), "seconds": round(e - s, 1), **ev}
            results.append(row)
            pc = per_class[lbl["class"]]
            pc["variations"] += 1
            pc["source_packets"] += len(fr)
            pc["seconds"] += round(e - s)
            for k, v in ev.items():
                if k not in ("distinct_src_ips", "distinct_dst_ports", "dns_distinct_names"):
                    pc[k] += v
            print(f"{lbl['variation'][:48]:48} {lbl['class']:10} {len(fr):7} pkts {e - s:6.1f}s  "
                  + " ".join(f"{k}={v}" for k, v in sorted(ev.items())), flush=True)
    print("\nper class:")
    for cls, pc in sorted(per_class.items()):
        print(f"  {cls:10} " + " ".join(f"{k}={v}" for k, v in sorted(pc.items())))
    with open(os.path.join(a.run, "check.json"), "w") as f:
        json.dump({"variations": results, "per_class": per_class}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
