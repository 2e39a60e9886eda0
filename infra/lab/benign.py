"""Benign traffic from the client namespaces: web browsing with think time (page plus assets,
now and then a large download or an admin login), DNS lookups of ordinary names in the lab
zone, SSH sessions that log in, run commands and copy a file, pings, and idle periods.

Each (client, activity) pair is one thread with its own seeded random generator, so a run with
the same seed makes the same choices (timing still depends on the machine). Every action is a
real client program (curl, dig, ssh/scp via sshpass, ping) started inside the client's
namespace; stop() ends the threads and whatever they are running.
"""
import random
import shutil
import subprocess
import tempfile
import threading

from services import ASSETS, HOSTNAMES, LARGE, PAGES

ACTIVITIES = ("web", "dns", "ssh", "ping", "oneshot", "mdns")

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
UA = ["Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
      "curl/7.88.1"]


class BenignTraffic:
    def __init__(self, lab, services, seed=0, activities=ACTIVITIES, think_scale=1.0, idle_prob=0.08):
        self.lab, self.svc = lab, services
        self.seed, self.activities = seed, [a for a in activities if a in ACTIVITIES]
        self.think_scale, self.idle_prob = think_scale, idle_prob
        self.stop_event = threading.Event()
        self.threads, self.running, self.lock = [], set(), threading.Lock()
        self.counts = {a: 0 for a in ACTIVITIES}
        self.tmp = tempfile.mkdtemp(prefix="ntalab-benign-")

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
                    p.kill()
        for t in self.threads:
            t.join(timeout=10)
        self.threads = []
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _run(self, host, argv, timeout=60):
        """Run one client command inside the host's namespace; benign failures (e.g. a request
        that times out during a flood) are part of the traffic, not errors of the lab."""
        if self.stop_event.is_set():
            return
        p = subprocess.Popen(host.cmd(*argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL)
        with self.lock:
            self.running.add(p)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        finally:
            with self.lock:
                self.running.discard(p)

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
