"""Benign traffic from the client namespaces: web browsing with think time (page plus assets,
now and then a large download or an admin login), DNS lookups of ordinary names in the lab
zone, SSH sessions that log in, run commands and copy a file, pings, and idle periods.

Wider activities (not in the default mix; name them in `activities`): hundreds of long-lived,
mostly idle TLS and plain connections with periodic messages plus MQTT subscriptions (chat and
push apps), a BitTorrent swarm (aria2c against the victim's seeder and tracker), bursts of
hundreds of distinct DNS names, NTP (chronyd and ntpdig), SSDP (upnpc searching, minidlna
announcing), a WireGuard or OpenVPN tunnel carrying the client's traffic to the victim, large
uploads and downloads in parallel (HTTP PUT/POST/GET, scp) and a headless Chromium loading
pages with many assets.

Each (client, activity) pair is one thread with its own seeded random generator, so a run with
the same seed makes the same choices (timing still depends on the machine). Every action is a
real client program (curl, dig, ssh/scp via sshpass, ping) started inside the client's
namespace; stop() ends the threads and whatever they are running.
"""
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from netns import sh
from services import (ASSETS, BULK, BURST_NAMES, CNAMES, GALLERY, HOSTNAMES, LARGE, PAGES, TORRENTS,
                      VICTIM_NAMES)

# The default mix (what an absent `activities` means, for the background and for `normal`).
ACTIVITIES = ("web", "dns", "ssh", "ping", "oneshot", "mdns")
WIDE_ACTIVITIES = ("longconn", "torrent", "dnsburst", "ntp", "ssdp", "wireguard", "openvpn", "bulk", "browser")
ALL_ACTIVITIES = ACTIVITIES + WIDE_ACTIVITIES
# Optional victim services (services.py want()) and client programs each activity needs.
ACTIVITY_SERVICES = {"longconn": {"tls", "mqtt"}, "torrent": {"torrent"}, "ntp": {"ntp"}, "ssdp": {"ssdp"},
                     "wireguard": {"wireguard"}, "openvpn": {"openvpn"}, "bulk": {"bulk"},
                     "browser": {"tls"}}
ACTIVITY_TOOLS = {"longconn": ["mosquitto", "mosquitto_sub", "mosquitto_pub"], "torrent": ["aria2c", "opentracker",
                  "mktorrent"], "ntp": ["chronyd", "ntpdig"], "ssdp": ["upnpc", "minidlnad"],
                  "wireguard": ["wireguard-go", "wg"], "openvpn": ["openvpn"], "bulk": ["scp"],
                  "browser": ["chromium"]}
VPNS = ("wireguard", "openvpn")


def services_for(activities):
    return set().union(*(ACTIVITY_SERVICES.get(a, set()) for a in activities))


def tools_for(activities):
    return sorted({t for a in activities for t in ACTIVITY_TOOLS.get(a, [])})

# mDNS service discovery as phones, TVs and printers do it on every LAN (queries and answers
# with long instance names and TXT records): ordinary traffic that must not look like a tunnel.
MDNS_SERVICES = ["_googlecast._tcp", "_airplay._tcp", "_raop._tcp", "_ipp._tcp", "_printer._tcp",
                 "_spotify-connect._tcp", "_companion-link._tcp", "_homekit._tcp", "_smb._tcp",
                 "_device-info._tcp", "_sleep-proxy._udp", "_hap._tcp"]
MDNS_INSTANCES = ["Living Room TV", "Kitchen speaker", "Office Printer HP LaserJet 400",
                  "Anna's MacBook Pro", "Bedroom Chromecast Ultra", "Samsung Galaxy S21",
                  "iPad de Marie", "NAS-4F2A9C", "Brother HL-L2350DW series"]
# A tiny sender: the DNS message is built here (a traffic generator, not a parser).
MDNS_SENDER = r"""
import random, socket, struct, sys
rng = random.Random(int(sys.argv[1]))
def name(n):
    out = b""
    for label in n.split("."):
        b = label.encode()
        out += bytes([len(b)]) + b
    return out + b"\0"
services, instances = sys.argv[2].split("|"), sys.argv[3].split("|")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
s.bind(("", 5353))
def rev6():
    return ".".join(rng.choice("0123456789abcdef") for _ in range(32)) + ".ip6.arpa"
for _ in range(rng.randint(1, 4)):
    svc = rng.choice(services) + ".local"
    if rng.random() < 0.25:  # a host probing its own names (ANY): hostname and reverse names
        qs = [("host-" + str(rng.randint(1, 99)) + ".local", 255), (rev6(), 255),
              (".".join(str(rng.randint(1, 254)) for _ in range(4)) + ".in-addr.arpa", 255)]
        msg = struct.pack("!6H", 0, 0, len(qs), 0, 0, 0) + b"".join(name(q) + struct.pack("!2H", t, 1) for q, t in qs)
    elif rng.random() < 0.5:  # a query: PTR for the service, sometimes TXT/SRV of an instance
        qs = [(svc, 12)] + ([(rng.choice(instances) + "." + svc, rng.choice([16, 33]))] if rng.random() < 0.5 else [])
        msg = struct.pack("!6H", 0, 0, len(qs), 0, 0, 0) + b"".join(name(q) + struct.pack("!2H", t, 1) for q, t in qs)
    else:  # an announcement: PTR -> instance, TXT with key=value pairs
        inst = rng.choice(instances) + "." + svc
        txt = b"".join(bytes([len(kv)]) + kv for kv in
                       [f"{k}={rng.getrandbits(32):08x}".encode() for k in ("id", "md", "ve", "rs", "fn")[: rng.randint(2, 5)]])
        ptr = name(inst)
        msg = (struct.pack("!6H", 0, 0x8400, 0, 2, 0, 0)
               + name(svc) + struct.pack("!2HIH", 12, 1, 4500, len(ptr)) + ptr
               + name(inst) + struct.pack("!2HIH", 16, 0x8001, 4500, len(txt)) + txt)
    s.sendto(msg, ("224.0.0.251", 5353))
"""
# Chat / push client: n_tls + n_plain connections held open for the whole run, each sending a small
# HTTP request (poll, presence update) every lo..hi seconds over its keep-alive connection and
# reading the answer; half of them also turn on TCP keepalive probes. Reconnects after errors.
LONGCONN = r"""
import asyncio, random, re, socket, ssl, sys, time
seed, ip, name, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
n_tls, n_plain, lo, hi = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
ctx = ssl.create_default_context(cafile=cafile)
ctx.set_alpn_protocols(["http/1.1"])
UA = ["LabChat/3.2 (Linux; Android 14)", "PushKit/1.9 CFNetwork/1410", "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0"]
PATHS = ["/api/poll", "/api/presence", "/api/sync", "/api/notify"]

async def one(i, tls):
    r = random.Random(seed * 100003 + i)
    ua = r.choice(UA)
    await asyncio.sleep(r.uniform(0, 15))  # apps and tabs connect over time, not all at once
    while True:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                ip, 443 if tls else 80, ssl=ctx if tls else None, server_hostname=name if tls else None), 15)
            if r.random() < 0.5:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, r.randint(5, 25))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
            while True:
                path = r.choice(PATHS)
                if r.random() < 0.3:
                    body = ('{"id":%d,"seq":%d,"status":"online"}' % (i, r.getrandbits(20))).encode()
                    head = (f"POST {path} HTTP/1.1\r\nHost: {name}\r\nUser-Agent: {ua}\r\n"
                            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
                else:
                    body = b""
                    head = (f"GET {path}?c={i}&since={int(time.time())} HTTP/1.1\r\nHost: {name}\r\n"
                            f"User-Agent: {ua}\r\n\r\n")
                writer.write(head.encode() + body)
                await writer.drain()
                hdr = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                m = re.search(rb"(?i)content-length: *(\d+)", hdr)
                await reader.readexactly(int(m.group(1)) if m else 0)
                await asyncio.sleep(r.uniform(lo, hi))
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
            await asyncio.sleep(r.uniform(2, 10))  # reconnect after a while, as apps do

async def main():
    await asyncio.gather(*(one(i, i < n_tls) for i in range(n_tls + n_plain)))
asyncio.run(main())
"""
# Names resolved through the system resolver (glibc getaddrinfo: A and AAAA) from a thread pool,
# as a browser prefetching the links of a page does.
RESOLVER = r"""
import socket, sys
from concurrent.futures import ThreadPoolExecutor
def look(n):
    try:
        socket.getaddrinfo(n, 443, proto=socket.IPPROTO_TCP)
    except OSError:
        pass
with ThreadPoolExecutor(int(sys.argv[1])) as ex:
    list(ex.map(look, sys.argv[2:]))
"""
# A UPnP control point browsing a media server's content directory (SOAP over HTTP).
SOAP_BROWSE = """<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" \
s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:Browse \
xmlns:u="urn:schemas-upnp-org:service:ContentDirectory:1"><ObjectID>{oid}</ObjectID>\
<BrowseFlag>BrowseDirectChildren</BrowseFlag><Filter>*</Filter><StartingIndex>0</StartingIndex>\
<RequestedCount>50</RequestedCount><SortCriteria></SortCriteria></u:Browse></s:Body></s:Envelope>"""
CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
            "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
            "--metrics-recording-only", "--disable-features=HttpsUpgrades,MediaRouter,OptimizationHints",
            "--ignore-certificate-errors", "--virtual-time-budget=15000"]
# Client side of the VPN tunnels: the tunnel program's own packets carry this firewall mark;
# everything else to the victim goes through routing table VPN_TABLE, i.e. into the tunnel.
VPN_MARK, VPN_TABLE = "0x5157", "5157"

UA = ["Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
      "curl/7.88.1"]


class BenignTraffic:
    def __init__(self, lab, services, seed=0, activities=ACTIVITIES, think_scale=1.0, idle_prob=0.08, logdir=None,
                 log_tag=None):
        unknown = [a for a in activities if a not in ALL_ACTIVITIES]
        if unknown:
            raise ValueError(f"unknown benign activities {unknown}; known: {', '.join(ALL_ACTIVITIES)}")
        if len([a for a in activities if a in VPNS]) > 1:
            raise ValueError("one VPN activity per mix: each takes over the client's route to the victim")
        self.lab, self.svc = lab, services
        self.seed, self.activities = seed, list(activities)
        self.think_scale, self.idle_prob = think_scale, idle_prob
        self.stop_event = threading.Event()
        self.threads, self.running, self.lock = [], set(), threading.Lock()
        self.counts = {a: 0 for a in self.activities}
        self.tmp = tempfile.mkdtemp(prefix="ntalab-benign-")
        os.chmod(self.tmp, 0o755)
        self.logdir = logdir or self.tmp
        self.log_tag = log_tag or f"benign-{seed}"
        self.daemons = {}  # (host role, name) -> long-running client program (Popen)
        self.vpn_up = {}  # host role -> interface name, while its tunnel carries its traffic

    @property
    def hosts(self):
        return self.lab.clients

    # ---- plumbing ---------------------------------------------------------------------------
    def start(self):
        for ci, host in enumerate(self.lab.clients):
            for ai, act in enumerate(self.activities):
                rng = random.Random(self.seed * 1000 + ci * 10 + ai)
                t = threading.Thread(target=self._loop, args=(act, host, rng), daemon=True,
                                     name=f"benign-{host.role}-{act}")
                t.start()
                self.threads.append(t)
        return self

    def stop(self):
        self.stop_event.set()
        with self.lock:
            for p in list(self.running):
                if p.poll() is None:
                    self._kill(p)
        for t in self.threads:
            t.join(timeout=10)
        self.threads = []
        for host in self.lab.clients:
            if host.role in self.vpn_up:
                self._vpn_down(host)
        for p in self.daemons.values():
            self._kill(p, signal.SIGTERM)
        for p in self.daemons.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                self._kill(p)
                p.wait()
        self.daemons = {}
        shutil.rmtree(self.tmp, ignore_errors=True)

    @staticmethod
    def _kill(p, sig=signal.SIGKILL):
        """Programs of the wider activities run in their own process group (chromium's helpers,
        a shell running two curls): signal the group."""
        try:
            if getattr(p, "group", False):
                os.killpg(p.pid, sig)
            else:
                p.send_signal(sig)
        except ProcessLookupError:
            pass

    def _start(self, host, argv, group=False, log=None):
        out = open(log, "ab") if log else subprocess.DEVNULL
        p = subprocess.Popen(host.cmd(*argv), stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL, start_new_session=group)
        if log:
            out.close()
        p.group = group
        return p

    def _run(self, host, argv, timeout=60, group=False):
        """Run one client command inside the host's namespace; benign failures (e.g. a request
        that times out during a flood) are part of the traffic, not errors of the lab."""
        self._run_many(host, [argv], timeout, group)

    def _run_many(self, host, argvs, timeout=60, group=False):
        """Several client commands at once (parallel transfers); waits for all, at most timeout s."""
        if self.stop_event.is_set():
            return
        with self.lock:
            procs = [self._start(host, argv, group) for argv in argvs]
            self.running.update(procs)
        deadline = time.time() + timeout
        try:
            for p in procs:
                try:
                    p.wait(max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    self._kill(p)
                    p.wait()
        finally:
            with self.lock:
                self.running.difference_update(procs)

    def _daemon(self, host, name, argv):
        """A client program that runs until stop() (a tunnel, an NTP daemon, a chat client)."""
        if self.stop_event.is_set():
            return None
        log = self._log(host, name)
        open(log, "w").close()
        with self.lock:
            p = self.daemons[(host.role, name)] = self._start(host, argv, group=True, log=log)
        return p

    def _log(self, host, name):
        return os.path.join(self.logdir, f"{self.log_tag}-{host.role}-{name}.log")

    def _alive(self, host, name):
        p = self.daemons.get((host.role, name))
        return p is not None and p.poll() is None

    def _think(self, rng, lo, hi):
        """Sleep lo..hi seconds (scaled), sometimes a long idle period instead; False = stop."""
        t = rng.uniform(lo, hi) * self.think_scale
        if rng.random() < self.idle_prob:
            t = rng.uniform(15, 40)
        return not self.stop_event.wait(t)

    def _loop(self, act, host, rng):
        step = getattr(self, f"_{act}")
        # stagger the threads so the clients do not start in lock step
        if self.stop_event.wait(rng.uniform(0, 2)):
            return
        while not self.stop_event.is_set():
            think = step(host, rng)
            self.counts[act] += 1
            if not self._think(rng, *think):
                return

    # ---- activities: each does one action and returns its think-time range --------------------
    def _web(self, host, rng):
        base = f"http://www.{self.svc.zone}"
        curl = ["curl", "-s", "--max-time", "30", "-A", rng.choice(UA)]
        get = lambda *urls: [x for u in urls for x in (u, "-o", "/dev/null")]
        r = rng.random()
        if r < 0.05:  # a large download
            self._run(host, curl + get(f"{base}/{rng.choice(list(LARGE))}"), timeout=90)
        elif r < 0.09:  # an administrator logging in correctly
            self._run(host, curl + ["-u", f"{self.svc.web_user}:{self.svc.web_password}"] + get(f"{base}/admin/"))
        elif r < 0.11:  # a user mistyping a password once (a single 401 is normal life)
            self._run(host, curl + ["-d", "user=alice&pass=wrong"] + get(f"{base}/login"))
        elif r < 0.16:
            self._run(host, curl + get(f"{base}/api/status"))
        else:  # a page and a few of its assets over one keep-alive connection, like a browser
            urls = [f"{base}/{rng.choice(PAGES)}"] + [f"{base}/{a}" for a in rng.sample(ASSETS, rng.randint(0, 4))]
            self._run(host, curl + ["-H", "Accept: text/html"] + get(*urls))
        return 1.0, 8.0

    def _dns(self, host, rng):
        names = []
        for _ in range(rng.randint(1, 5)):
            r = rng.random()
            if r < 0.05:
                names.append((f"nosuch{rng.randint(1, 999)}.{self.svc.zone}", "A"))  # NXDOMAIN
            elif r < 0.10:  # reverse lookups (long ip6.arpa names are ordinary, not a tunnel)
                v6 = ".".join(rng.choice("0123456789abcdef") for _ in range(32))
                names.append((rng.choice([f"{v6}.ip6.arpa", f"{rng.randint(1, 254)}.0.77.10.in-addr.arpa"]), "PTR"))
            elif r < 0.12:
                names.append((self.svc.zone, rng.choice(["MX", "TXT"])))
            else:
                names.append((f"{rng.choice(HOSTNAMES)}.{self.svc.zone}", rng.choice(["A"] * 6 + ["AAAA"])))
        argv = ["dig", "+tries=1", "+time=2", f"@{self.lab.victim.ip}"]
        for name, qtype in names:
            argv += [name, qtype]
        self._run(host, argv, timeout=15)
        return 0.5, 6.0

    def _ssh(self, host, rng):
        svc, v = self.svc, self.lab.victim
        # admins reach sshd on whichever port it listens on, like the guessers do
        port = str(rng.choice(svc.ssh_ports))
        opts = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]
        if rng.random() < 0.3:  # copy a file back, like fetching a log or a build
            dst = f"{self.tmp}/{host.role}-data.bin"
            self._run(host, ["sshpass", "-p", svc.password, "scp", "-P", port, *opts,
                             f"{svc.user}@{v.ip}:work/data.bin", dst], timeout=60)
        else:  # an interactive-ish session: a few commands with pauses between them
            cmds = rng.sample(["uptime", "ls -la", "df -h", "ps aux | head -20", "cat work/notes.txt | wc -l",
                               "free -m", "uname -a", "who", "tail -5 work/notes.txt", "date"], rng.randint(2, 5))
            script = "; ".join(f"{c}; sleep {rng.randint(1, 3)}" for c in cmds)
            self._run(host, ["sshpass", "-p", svc.password, "ssh", "-p", port, *opts, f"{svc.user}@{v.ip}", script],
                      timeout=90)
        return 10.0, 40.0

    def _oneshot(self, host, rng):
        # One request on its own connection, then a long pause: an API poll, a health check, a
        # login page that answers 401 and a retry with credentials (HTTP basic auth).
        base = f"http://www.{self.svc.zone}"
        curl = ["curl", "-s", "--max-time", "20", "-o", "/dev/null", "-A", rng.choice(UA)]
        r = rng.random()
        if r < 0.3:
            self._run(host, curl + [f"{base}/admin/"])  # 401 challenge, no retry
        elif r < 0.6:
            self._run(host, curl + ["--anyauth", "-u", f"{self.svc.web_user}:{self.svc.web_password}", f"{base}/admin/"])
        else:
            self._run(host, curl + [f"{base}/{rng.choice(['api/status'] + PAGES)}"])
        return 5.0, 25.0

    def _mdns(self, host, rng):
        self._run(host, ["python3", "-c", MDNS_SENDER, str(rng.getrandbits(32)), "|".join(MDNS_SERVICES),
                         "|".join(MDNS_INSTANCES)], timeout=10)
        return 1.0, 12.0

    def _ping(self, host, rng):
        target = self.lab.victim.ip if rng.random() < 0.7 else self.lab.gateway.ip
        self._run(host, ["ping", "-q", "-c", str(rng.randint(2, 8)), "-i", "0.5", target], timeout=20)
        return 8.0, 30.0

    # ---- wider activities -------------------------------------------------------------------------
    def _longconn(self, host, rng):
        """First call: a chat/push client holding 50-300 keep-alive connections (TLS to nginx on
        443, plain HTTP on 80) and 3-8 MQTT subscriptions (plain 1883, TLS 8883) with keepalives
        of 15-60 s. Later calls: publish a message, which the broker pushes to the subscribers."""
        zone, crt = self.svc.zone, self.svc.cert()[0]
        if not self._alive(host, "longconn"):
            n = rng.randint(50, 300)
            n_tls = int(n * rng.uniform(0.4, 0.8))
            self._daemon(host, "longconn", ["python3", "-c", LONGCONN, rng.getrandbits(32), self.lab.victim.ip,
                                            f"push.{zone}", crt, n_tls, n - n_tls, 10, 60])
            for k in range(rng.randint(3, 8)):
                tls = rng.random() < 0.6
                self._daemon(host, f"mqtt-sub{k}", [
                    "mosquitto_sub", "-h", f"mqtt.{zone}", "-p", "8883" if tls else "1883",
                    *(["--cafile", crt] if tls else []),
                    "-k", rng.choice([15, 30, 45, 60]), "-q", rng.choice([0, 1]), "-i", f"{host.role}-app{k}",
                    "-t", f"lab/{host.role}/#", "-t", "lab/all/#"])
            return 2.0, 10.0
        tls = rng.random() < 0.6
        to = rng.choice([c.role for c in self.lab.clients] + ["all"])
        text = "".join(rng.choice("abcdefghij klmnop") for _ in range(rng.randint(5, 200)))
        msg = '{"from":"%s","text":"%s"}' % (host.role, text)
        self._run(host, ["mosquitto_pub", "-h", f"mqtt.{zone}", "-p", "8883" if tls else "1883",
                         *(["--cafile", crt] if tls else []), "-q", rng.choice([0, 1]), "-t", f"lab/{to}/chat",
                         "-m", msg],
                  timeout=15)
        return 5.0, 20.0

    def _torrent(self, host, rng):
        """aria2c fetches a .torrent from the web site and joins the swarm (the victim's seeder,
        the other clients) through the tracker and local peer discovery; it seeds a little
        after completing, then the file is deleted. DHT is off: nothing leaves the lab."""
        # one torrent is popular (both clients tend to fetch it at once, so they trade pieces with
        # each other as well as with the seeder), the others come up now and then
        names = list(TORRENTS)
        name = names[1] if rng.random() < 0.6 else rng.choice(names)
        dl = f"{self.tmp}/torrent-{host.role}"
        rate = rng.choice(["1M", "2M", "3M"])
        self._run(host, [
            "aria2c", "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=true", "--bt-lpd-interface=eth0",
            "--listen-port=6881-6889", f"--seed-time={rng.uniform(0.2, 1.0):.2f}", f"--max-download-limit={rate}",
            "--max-upload-limit=2M", "--dir", dl, "--file-allocation=none", "--allow-overwrite=true",
            "--summary-interval=0", "--console-log-level=warn", "--follow-torrent=mem", "--bt-save-metadata=false",
            "--auto-save-interval=0", f"http://www.{self.svc.zone}/torrents/{name}.torrent"], timeout=240, group=True)
        shutil.rmtree(dl, ignore_errors=True)
        return 3.0, 15.0

    def _dnsburst(self, host, rng):
        """100-500 distinct names of the zone in a few seconds, 5-20 % of them NXDOMAIN: a crawler
        (dig's batch mode, one after the other) or a browser prefetching a page's links (the
        system resolver from a thread pool, A and AAAA per name)."""
        zone = self.svc.zone
        pool = BURST_NAMES + VICTIM_NAMES + HOSTNAMES + list(CNAMES)
        names = [f"{n}.{zone}" for n in rng.sample(pool, rng.randint(100, 500))]
        for i in rng.sample(range(len(names)), int(len(names) * rng.uniform(0.05, 0.2))):
            names[i] = rng.choice([f"{rng.choice(pool)}{rng.randint(31, 999)}.{zone}",
                                   f"{rng.choice(pool)}-old.{zone}", f"www.{rng.choice(pool)}.{zone}"])
        if rng.random() < 0.4:
            batch = f"{self.tmp}/{host.role}-burst.txt"
            with open(batch, "w") as f:
                f.write("".join(f"{n} {rng.choice(['A'] * 4 + ['AAAA', 'MX'])}\n" for n in names))
            self._run(host, ["dig", "+tries=1", "+time=2", f"@{self.lab.victim.ip}", "-f", batch], timeout=60)
        else:
            self._run(host, ["python3", "-c", RESOLVER, rng.randint(4, 16), *names], timeout=60)
        return 5.0, 25.0

    def _ntp(self, host, rng):
        """chronyd as the client's time daemon (iburst, then a poll every 2^minpoll s), and now
        and then a one-shot SNTP query with ntpdig, like ntpdate from a cron job."""
        if not self._alive(host, "chronyd"):
            conf = f"{self.tmp}/chrony-{host.role}.conf"
            minpoll = rng.choice([3, 4, 5])
            with open(conf, "w") as f:
                f.write(f"server time.{self.svc.zone} iburst minpoll {minpoll} maxpoll {minpoll + 2}\n"
                        f"pidfile {self.tmp}/chronyd-{host.role}.pid\nport 0\ncmdport 0\nbindcmdaddress /\n")
            self._daemon(host, "chronyd", ["chronyd", "-x", "-d", "-u", "root", "-f", conf])
            return 5.0, 15.0
        self._run(host, ["ntpdig", "-t", "2", "-c", "1", f"time.{self.svc.zone}"], timeout=15)
        return 10.0, 40.0

    def _ssdp(self, host, rng):
        """upnpc's discovery (SSDP M-SEARCH for gateways and root devices, then the device
        descriptions over HTTP) and a media player browsing minidlna's content directory. The
        second client is itself a media renderer/server (its own minidlna announcing with NOTIFY)."""
        if host is self.lab.clients[-1] and len(self.lab.clients) > 1 and not self._alive(host, "minidlna"):
            self._daemon(host, "minidlna", self.svc.minidlna_argv(host, "Living Room TV", notify=20))
        v = self.lab.victim
        r = rng.random()
        if r < 0.5:
            self._run(host, ["upnpc", "-l"], timeout=20)
        elif r < 0.7:
            self._run(host, ["upnpc", "-s"], timeout=20)
        else:
            ctl = f"http://{v.ip}:8200"
            oid = rng.choice(["0", "1", "3", "64"])
            self._run(host, ["sh", "-c",
                             f"curl -s -m 10 -o /dev/null {ctl}/rootDesc.xml && curl -s -m 10 -o /dev/null "
                             f"-H 'Content-Type: text/xml; charset=\"utf-8\"' "
                             f"-H 'SOAPAction: \"urn:schemas-upnp-org:service:ContentDirectory:1#Browse\"' "
                             f"--data-binary '{SOAP_BROWSE.format(oid=oid)}' {ctl}/ctl/ContentDir"],
                      timeout=25, group=True)
        return 5.0, 30.0

    # ---- VPN tunnels ------------------------------------------------------------------------------
    def _wireguard(self, host, rng):
        """A WireGuard tunnel (wireguard-go, UDP 51820, keepalive 25 s) that, once up, carries all
        of the client's traffic to the victim: this activity's web pages and SSH sessions, and
        whatever the other activities of the mix send to the victim."""
        if host.role not in self.vpn_up:
            wg = self.svc.wg
            c = wg["clients"][host.role]
            ifn = c["ifname"]
            p = self._daemon(host, "wireguard-go", ["wireguard-go", "-f", ifn])
            if not p or not self._wait(lambda: self._has_link(host, ifn)):
                return 5.0, 10.0
            sh(*host.cmd("wg", "set", ifn, "private-key", c["key_file"], "fwmark", VPN_MARK, "peer", wg["victim_pub"],
                         "endpoint", f"{self.lab.victim.ip}:{wg['port']}", "persistent-keepalive", "25",
                         "allowed-ips", f"{wg['victim_tunnel_ip']}/32,{self.lab.victim.ip}/32"))
            sh("ip", "-n", host.ns, "addr", "add", f"{c['ip']}/24", "dev", ifn)
            sh("ip", "-n", host.ns, "link", "set", ifn, "up")
            self._vpn_route(host, ifn, c["ip"])
        return self._in_tunnel(host, rng)

    def _openvpn(self, host, rng):
        """OpenVPN (static key, UDP 1194+) carrying the client's traffic to the victim, as
        _wireguard does; OpenVPN's own pings every 5 s keep it alive."""
        if host.role not in self.vpn_up:
            o = self.svc.ovpn
            c = o["clients"][host.role]
            ifn = "ovpnc"
            p = self._daemon(host, "openvpn", ["openvpn", "--remote", self.lab.victim.ip, c["port"], "--nobind",
                                               "--dev", ifn, "--ifconfig", c["ip"], c["peer_ip"],
                                               "--mark", int(VPN_MARK, 16),
                                               # the victim is the tunnel's end point and what it
                                               # carries traffic to; the mark keeps that loop-free
                                               "--allow-recursive-routing",
                                               *o["common"]])
            log = self._log(host, "openvpn")
            done = lambda: "Initialization Sequence Completed" in open(log, errors="replace").read()
            if not p or not self._wait(done):
                return 5.0, 10.0
            self._vpn_route(host, ifn, c["ip"])
        return self._in_tunnel(host, rng)

    def _wait(self, ok, timeout=15):
        deadline = time.time() + timeout
        while not ok():
            if time.time() > deadline or self.stop_event.wait(0.2):
                return False
        return True

    @staticmethod
    def _has_link(host, ifn):
        return sh("ip", "-n", host.ns, "link", "show", ifn, check=False).returncode == 0

    def _vpn_route(self, host, ifn, tunnel_ip):
        """Policy routing as wg-quick does it: packets without the tunnel's mark (i.e. not the
        tunnel's own UDP) look up VPN_TABLE, whose only route sends the victim's address into
        the tunnel; everything else falls through to the main table."""
        sh("ip", "-n", host.ns, "route", "replace", f"{self.lab.victim.ip}/32", "dev", ifn, "src", tunnel_ip,
           "table", VPN_TABLE)
        sh("ip", "-n", host.ns, "rule", "add", "not", "fwmark", VPN_MARK, "table", VPN_TABLE, "priority", "1000")
        self.vpn_up[host.role] = ifn

    def _vpn_down(self, host):
        sh("ip", "-n", host.ns, "rule", "del", "priority", "1000", check=False)
        sh("ip", "-n", host.ns, "route", "flush", "table", VPN_TABLE, check=False)
        self.vpn_up.pop(host.role, None)

    def _in_tunnel(self, host, rng):
        if rng.random() < 0.65:
            self._web(host, rng)
        else:
            self._ssh(host, rng)
        return 2.0, 12.0

    # ---- bulk transfers and the browser -----------------------------------------------------------
    def _upload_file(self, host, mb):
        path = f"{self.tmp}/{host.role}-upload-{mb}mb.bin"
        if not os.path.exists(path):
            with open(path, "wb") as f:
                for _ in range(mb):
                    f.write(os.urandom(1 << 20))
        return path

    def _bulk(self, host, rng):
        """1-3 large transfers at once, 10-40 MB each at 1-4 MB/s: a WebDAV-style PUT (then
        DELETE), a multipart form POST, an HTTP download, scp up or down."""
        svc, v, zone = self.svc, self.lab.victim, self.svc.zone
        ssh_opts = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                    "-P", str(rng.choice(svc.ssh_ports))]
        jobs = []
        for k in range(rng.randint(1, 3)):
            mb, rate = rng.choice([10, 20, 30, 40]), rng.choice([1, 2, 3, 4])
            kind = rng.choice(["put", "post", "get", "get", "scp-up", "scp-down"])
            curl = f"curl -s -m 120 --limit-rate {rate}M -A '{rng.choice(UA)}'"
            if kind == "put":
                url = f"http://upload.{zone}/upload/{host.role}-{rng.getrandbits(32):08x}.bin"
                jobs.append(["sh", "-c", f"{curl} -o /dev/null -T {self._upload_file(host, mb)} {url}; "
                                         f"{curl} -o /dev/null -X DELETE {url}"])
            elif kind == "post":
                jobs.append(["sh", "-c", f"{curl} -o /dev/null -F 'file=@{self._upload_file(host, mb)}' "
                                         f"-F note=backup http://upload.{zone}/upload"])
            elif kind == "get":
                jobs.append(["sh", "-c", f"{curl} -o /dev/null http://www.{zone}/{rng.choice(list(BULK))}"])
            elif kind == "scp-up":
                jobs.append(["sshpass", "-p", svc.password, "scp", "-l", str(rate * 8000), *ssh_opts,
                             self._upload_file(host, mb), f"{svc.user}@{v.ip}:/dev/null"])
            else:
                jobs.append(["sshpass", "-p", svc.password, "scp", "-l", str(rate * 8000), *ssh_opts,
                             f"{svc.user}@{v.ip}:{svc.d}/www/{rng.choice(list(BULK))}", "/dev/null"])
        self._run_many(host, jobs, timeout=150, group=True)
        return 8.0, 30.0

    def _browser(self, host, rng):
        """Headless Chromium loading a page: mostly a gallery with 50-80 assets over five host
        names (HTTP/1.1: up to six connections per name; HTTPS: HTTP/2), sometimes with a warm
        cache (the profile of the previous visit), sometimes a fresh profile."""
        scheme = "https" if rng.random() < 0.5 else "http"
        page = rng.choice(GALLERY) if rng.random() < 0.8 else rng.choice(PAGES)
        warm = rng.random() < 0.4
        profile = f"{self.tmp}/chromium-{host.role}" + ("" if warm else f"-{rng.getrandbits(32):08x}")
        url = f"{scheme}://www.{self.svc.zone}/{page}"
        self._run(host, [*CHROMIUM, f"--user-data-dir={profile}", "--dump-dom", url], timeout=60, group=True)
        if not warm:
            shutil.rmtree(profile, ignore_errors=True)
        return 8.0, 25.0
