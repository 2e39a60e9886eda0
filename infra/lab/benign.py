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

ACTIVITIES = ("web", "dns", "ssh", "ping")
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
        opts = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]
        if rng.random() < 0.3:  # copy a file back, like fetching a log or a build
            dst = f"{self.tmp}/{host.role}-data.bin"
            self._run(host, ["sshpass", "-p", svc.password, "scp", *opts,
                             f"{svc.user}@{v.ip}:work/data.bin", dst], timeout=60)
        else:  # an interactive-ish session: a few commands with pauses between them
            cmds = rng.sample(["uptime", "ls -la", "df -h", "ps aux | head -20", "cat work/notes.txt | wc -l",
                               "free -m", "uname -a", "who", "tail -5 work/notes.txt", "date"], rng.randint(2, 5))
            script = "; ".join(f"{c}; sleep {rng.randint(1, 3)}" for c in cmds)
            self._run(host, ["sshpass", "-p", svc.password, "ssh", *opts, f"{svc.user}@{v.ip}", script], timeout=90)
        return 10.0, 40.0

    def _ping(self, host, rng):
        target = self.lab.victim.ip if rng.random() < 0.7 else self.lab.gateway.ip
        self._run(host, ["ping", "-q", "-c", str(rng.randint(2, 8)), "-i", "0.5", target], timeout=20)
        return 8.0, 30.0
