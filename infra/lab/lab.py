#!/usr/bin/env python3
"""NTA attack lab: builds the namespaces, starts the victim's services and benign clients, runs
every attack variation of a TOML config with real tools while capturing on the victim's
interface, and writes one pcap per variation plus labels.jsonl.

    python3 infra/lab/lab.py [--config infra/lab/lab.toml] [--quick] [--out DIR] [--only TEXT]

Needs root and the packages of infra/lab/setup.sh. Everything it creates (namespaces, processes,
/etc/netns/<ns>/ files) is removed on exit, also on an error or Ctrl-C / SIGTERM.
"""
import argparse
import itertools
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from attacks import Runner  # noqa: E402
from benign import ACTIVITIES, ALL_ACTIVITIES, BenignTraffic, services_for, tools_for  # noqa: E402
from netns import Lab  # noqa: E402
from services import Services  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
CLASSES = {"Normal", "arp_spoof", "dns_tunnel", "icmp_flood", "port_scan", "slowloris", "ssh_brute",
           "syn_flood", "udp_flood"}
TOOLS = ["tcpdump", "hping3", "nmap", "masscan", "hydra", "medusa", "ncrack", "patator", "slowhttptest", "iodine", "iodined",
         "arpspoof", "nginx", "/usr/sbin/sshd", "dnsmasq", "curl", "dig", "sshpass", "openssl"]


# ---- configuration ------------------------------------------------------------------------------
def expand(cfg, quick=False):
    """Scenarios -> flat list of variations. A scenario's `matrix` (table of lists) expands to
    the product of its values; `variations` (list of tables) lists them one by one; each
    variation's keys override the scenario's, and fill the {placeholders} of `args`."""
    out, seed = [], cfg.get("lab", {}).get("seed", 0)
    q = cfg.get("quick", {})
    for sc in cfg.get("scenario", []):
        if sc["class"] not in CLASSES:
            raise SystemExit(f"scenario {sc['name']}: unknown class {sc['class']!r}")
        if "variations" in sc:
            combos = sc["variations"]
        elif "matrix" in sc:
            keys = list(sc["matrix"])
            combos = [dict(zip(keys, vals)) for vals in itertools.product(*(sc["matrix"][k] for k in keys))]
        else:
            combos = [{}]
        if quick:
            if sc["name"] not in q.get("pick", []):
                continue
            combos = combos[:1]
        for combo in combos:
            var = {k: v for k, v in sc.items() if k not in ("matrix", "variations")}
            var.update(combo)
            var["scenario"] = sc["name"]
            suffix = combo.get("label") or "-".join(f"{k}{v}" for k, v in combo.items()
                                                    if not isinstance(v, (list, dict)))
            var["name"] = re.sub(r"[^A-Za-z0-9_.=-]+", "", f"{sc['name']}-{suffix}".strip("-"))[:80]
            var["seed"] = seed + len(out)
            if quick:
                var["duration"] = min(var.get("duration", 10), var.get("quick_duration", q.get("duration", 6)))
            out.append(var)
    return out


def fill(var, lab, svc):
    """Fills {placeholders} in the args template; the result is a list of arguments."""
    names = {"victim": lab.victim.ip, "victim2": lab.victim.extra_ips[0], "gateway": lab.gateway.ip,
             "attacker": lab.attacker.ip, "client": lab.clients[0].ip, "zone": svc.zone,
             "duration": var.get("duration", 10)}
    names.update({k: v for k, v in var.items() if isinstance(v, (str, int, float))})
    return [a.format(**names) for a in var.get("args", "").split()]


# ---- capture ------------------------------------------------------------------------------------
def start_capture(lab, path, log):
    # -Z root: keep root so tcpdump may write into the (root-owned) output directory;
    # -U: write each packet at once, so a killed run still leaves a readable file
    # -B: a 32 MB kernel buffer, so floods do not lose packets while other jobs hog the CPU
    p = lab.spawn(lab.victim, ["tcpdump", "-i", "eth0", "-n", "-U", "-B", "32768", "-Z", "root", "-w", path],
                  log=log)
    deadline = time.time() + 10
    while "listening on" not in open(log).read():
        if p.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"tcpdump did not start; see {log}")
        time.sleep(0.05)
    return p


def stop_capture(lab, p, log):
    lab.stop(p, signal.SIGINT)
    text = open(log).read()
    got = lambda what: int(m.group(1)) if (m := re.search(rf"(\d+) packets? {what}", text)) else None
    return {"packets": got("captured"), "dropped": got("dropped by kernel")}


# ---- main ---------------------------------------------------------------------------------------
class Stop(Exception):
    pass


def on_signal(signum, _frame):
    raise Stop(f"signal {signum}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=os.path.join(HERE, "lab.toml"))
    ap.add_argument("--quick", action="store_true", help="a few short attacks (the [quick] pick list)")
    ap.add_argument("--out", help="output directory (default .nta/lab/<run-id> in the checkout)")
    ap.add_argument("--only", help="run only variations whose name or class contains one of these "
                                   "comma-separated texts")
    ap.add_argument("--skip", help="leave out variations whose name contains one of these comma-separated texts")
    ap.add_argument("--list", action="store_true", help="print the variations and exit")
    ap.add_argument("--no-benign", action="store_true", help="no benign background traffic")
    args = ap.parse_args()

    with open(args.config, "rb") as f:
        cfg = tomllib.load(f)
    variations = expand(cfg, args.quick)
    if args.only:
        picks = args.only.split(",")
        variations = [v for v in variations if any(t in v["name"] or t == v["class"] for t in picks)]
    if args.skip:
        variations = [v for v in variations if not any(t in v["name"] for t in args.skip.split(","))]
    if args.list:
        for v in variations:
            print(f"{v['class']:11} {v['tool']:12} {v.get('duration', '-'):>4}s  {v['name']}")
        print(f"{len(variations)} variations")
        return 0
    if os.geteuid() != 0:
        raise SystemExit("lab.py needs root (network namespaces, raw sockets)")
    labcfg = cfg.get("lab", {})
    benign_on = labcfg.get("benign_background", True) and not args.no_benign
    bg_activities = labcfg.get("benign_activities", ACTIVITIES) if benign_on else []
    # the wider benign activities need their own programs, only when a picked variation uses them
    used = set(bg_activities).union(*(v.get("activities", ACTIVITIES) for v in variations if v["tool"] == "benign"))
    if used - set(ALL_ACTIVITIES):
        raise SystemExit(f"unknown benign activities: {' '.join(sorted(used - set(ALL_ACTIVITIES)))}; "
                         f"known: {' '.join(ALL_ACTIVITIES)}")
    missing = [t for t in TOOLS + tools_for(used) if not shutil.which(t)]
    if missing:
        raise SystemExit(f"missing tools: {' '.join(missing)}; run: bash {HERE}/setup.sh")

    run_id = time.strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    out = os.path.abspath(args.out or os.path.join(ROOT, ".nta", "lab", run_id))
    for d in ("captures", "logs"):
        os.makedirs(os.path.join(out, d), exist_ok=True)
    labels_path = os.path.join(out, "labels.jsonl")
    open(labels_path, "w").close()
    work = tempfile.mkdtemp(prefix="ntalab-")
    pre, post = labcfg.get("pre_seconds", 2), labcfg.get("post_seconds", 3)
    if args.quick:
        pre, post = cfg["quick"].get("pre_seconds", pre), cfg["quick"].get("post_seconds", post)
    manifest = {"run_id": run_id, "config": os.path.abspath(args.config), "quick": args.quick,
                "started": time.time(), "benign_background": benign_on, "captures": []}
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"lab: {len(variations)} variations -> {out}", flush=True)

    t0 = time.time()
    background = None
    try:
        with Lab(prefix=labcfg.get("prefix", "ntalab"), subnet=labcfg.get("subnet", "10.77.0"),
                 clients=labcfg.get("clients", 2)) as lab:
            svc = Services(lab, work, cfg.get("services", {}))
            svc.start(seed=labcfg.get("seed", 0))
            manifest["hosts"] = {h.role: {"ns": h.ns, "ips": h.ips, "mac": h.mac} for h in lab.hosts}
            runner = Runner(lab, svc, os.path.join(out, "logs"))
            benign_kw = dict(activities=bg_activities, think_scale=labcfg.get("benign_think_scale", 1.0),
                             logdir=os.path.join(out, "logs"))
            # optional victim services run only while an activity of the capture needs them
            bg_services = services_for(bg_activities)
            if benign_on:
                svc.want(bg_services)
                background = BenignTraffic(lab, svc, seed=labcfg.get("seed", 0), log_tag="background-000",
                                           **benign_kw).start()
                time.sleep(labcfg.get("warmup_seconds", 3))
            for i, var in enumerate(variations):
                var["id"] = f"{i + 1:03d}-{var['name']}"
                var["args"] = fill(var, lab, svc)
                if var["tool"] == "benign" and background:  # a Normal capture has its own mix
                    background.stop()
                    background = None
                svc.want(services_for(var.get("activities", ACTIVITIES)) if var["tool"] == "benign" else bg_services)
                res = run_one(lab, svc, runner, var, out, pre, post, background)
                manifest["captures"].append(res)
                with open(labels_path, "a") as f:
                    for lab_line in res.pop("labels"):
                        f.write(json.dumps(lab_line) + "\n")
                print(f"lab: [{i + 1}/{len(variations)}] {var['id']}: {res['seconds']:.1f}s, "
                      f"{res['packets']} packets, {res['dropped']} dropped, rc={res['exit_code']}", flush=True)
                if benign_on and background is None:
                    svc.want(bg_services)
                    background = BenignTraffic(lab, svc, seed=labcfg.get("seed", 0) + i,
                                               log_tag=f"background-{i + 1:03d}", **benign_kw).start()
            if background:
                background.stop()
                background = None
            svc.stop()
            for name in ("nginx-access.log", "sshd.log", "dnsmasq.log", "iodined.log", "nginx-error.log",
                         "nginx-tls-access.log", "nginx-tls-error.log", "mosquitto.log", "chronyd.log",
                         "opentracker.log", "aria2-seed.log", "minidlna.out", "wireguard-go.log",
                         *(f"openvpn-{c.role}.log" for c in lab.clients)):
                if os.path.exists(os.path.join(work, name)):
                    shutil.copy(os.path.join(work, name), os.path.join(out, "logs", "victim-" + name))
        manifest["status"] = "ok"
    except Stop as e:  # Ctrl-C / SIGTERM: the with-block has already torn the lab down
        manifest["status"] = f"interrupted: {e}"
        return 130
    except Exception as e:
        manifest["status"] = f"failed: {e!r}"
        print(f"lab: FAILED: {e!r}", file=sys.stderr, flush=True)
        raise
    finally:
        if background:
            background.stop()
        manifest["finished"] = time.time()
        manifest["seconds"] = round(time.time() - t0, 1)
        with open(os.path.join(out, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
        shutil.rmtree(work, ignore_errors=True)
        print(f"lab: {manifest['status']} after {manifest['seconds']}s; labels: {labels_path}", flush=True)
    return 0


def run_one(lab, svc, runner, var, out, pre, post, background):
    """One variation: fresh ARP state, capture on, attack (or benign mix), capture off, labels."""
    cap_rel = f"captures/{var['id']}.pcap"
    log = os.path.join(out, "logs", f"{var['id']}.log")
    open(log, "w").close()
    lab.flush_neighbours()
    cap_log = os.path.join(out, "logs", f"{var['id']}.tcpdump.log")
    open(cap_log, "w").close()
    cap = start_capture(lab, os.path.join(out, cap_rel), cap_log)
    cap_start = time.time()
    labels, extra = [], {}
    try:
        time.sleep(pre)
        if var["tool"] == "benign":
            mix = BenignTraffic(lab, svc, seed=var["seed"], activities=var.get("activities", ACTIVITIES),
                                think_scale=var.get("think_scale", 1.0), idle_prob=var.get("idle_prob", 0.08),
                                logdir=os.path.join(out, "logs"), log_tag=var["id"])
            start = time.time()
            mix.start()
            time.sleep(var.get("duration", 30))
            mix.stop()
            res = {"start_epoch": start, "end_epoch": time.time(), "exit_code": 0,
                   "options": f"activities={','.join(mix.activities) or 'none (idle)'} "
                              f"think_scale={mix.think_scale}"}
            extra["benign_actions"] = dict(mix.counts)
        else:
            res = runner.run(var, log)
        time.sleep(post)
    finally:
        stats = stop_capture(lab, cap, cap_log)
    cap_end = time.time()
    common = {"capture": cap_rel, "variation": var["id"], "scenario": var["scenario"],
              "capture_start_epoch": round(cap_start, 6), "capture_end_epoch": round(cap_end, 6)}
    clients = lab.clients
    if var["tool"] != "benign":
        lbl = {**common, "class": var["class"], "tool": var["tool"]}
        lbl.update({k: (round(v, 6) if k.endswith("_epoch") else v) for k, v in res.items()})
        labels.append(lbl)
    if var["tool"] == "benign" or background:
        # benign traffic covers the whole capture; its "attacker" fields name the sources
        labels.append({**common, "class": "Normal", "tool": "benign",
                       "options": res["options"] if var["tool"] == "benign" else "background",
                       "attacker_ips": [c.ip for c in clients], "attacker_macs": [c.mac for c in clients],
                       "victim_ips": [lab.victim.ip], "target_ips": [lab.victim.ip], "spoofed": False,
                       "start_epoch": round(cap_start, 6), "end_epoch": round(cap_end, 6)})
    return {"id": var["id"], "class": var["class"], "capture": cap_rel, "labels": labels,
            "seconds": cap_end - cap_start, "exit_code": res.get("exit_code"), **stats, **extra}


if __name__ == "__main__":
    sys.exit(main())
