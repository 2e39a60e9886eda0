"""Network namespaces for the attack lab: one "switch" namespace holding a Linux bridge, and one
namespace per host (gateway, victim, benign clients, attacker) joined to it by a veth pair.

Why a switch namespace instead of a bridge in the root namespace: nothing the lab sends (spoofed
floods, ARP poisoning, masscan's own TCP stack) can reach the host's real interfaces or routes,
and tearing the lab down is just deleting namespaces. The hosts' default route points at the
lab gateway namespace, which has IP forwarding off and no route of its own, so packets to
addresses outside 10.77.0.0/24 (replies to spoofed sources) die there.

Every host gets a fixed, locally administered MAC (02:77:00:00:00:<last octet>) so that labels
can name attacker MACs before anything runs.
"""
import os
import shutil
import signal
import subprocess
import time


def sh(*cmd, check=True, quiet=False, **kw):
    """Run a command, fail loudly (with its stderr) unless check=False."""
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def mac_for(ip):
    last = int(ip.rsplit(".", 1)[1])
    return f"02:77:00:00:00:{last:02x}"


class Host:
    def __init__(self, role, ns, ip, extra_ips=()):
        self.role, self.ns, self.ip = role, ns, ip
        self.extra_ips = list(extra_ips)
        self.mac = mac_for(ip)

    @property
    def ips(self):
        return [self.ip] + self.extra_ips

    def cmd(self, *argv):
        """argv prefixed so that it runs inside this host's namespace."""
        return ["ip", "netns", "exec", self.ns] + [str(a) for a in argv]

    def __repr__(self):
        return f"Host({self.role} {self.ns} {self.ip} {self.mac})"


class Lab:
    """Builds and destroys the topology. Use as a context manager: __exit__ always cleans up."""

    def __init__(self, prefix="ntalab", subnet="10.77.0", clients=2):
        self.prefix, self.subnet = prefix, subnet
        self.switch_ns = f"{prefix}-sw"
        n = lambda role: f"{prefix}-{role}"
        s = subnet
        self.gateway = Host("gateway", n("gw"), f"{s}.1")
        # .11 is a second victim address: iodined binds there because dnsmasq owns port 53 on .10
        self.victim = Host("victim", n("vic"), f"{s}.10", extra_ips=[f"{s}.11"])
        self.clients = [Host(f"client{i + 1}", n(f"cli{i + 1}"), f"{s}.{20 + i}") for i in range(clients)]
        self.attacker = Host("attacker", n("att"), f"{s}.66")
        self.hosts = [self.gateway, self.victim, *self.clients, self.attacker]
        self.procs = []  # every background process we start, so cleanup can end it

    # ---- life cycle -------------------------------------------------------------------------
    def __enter__(self):
        self.cleanup(stale=True)
        try:
            self.build()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def namespaces(self):
        return [self.switch_ns] + [h.ns for h in self.hosts]

    def build(self):
        sh("ip", "netns", "add", self.switch_ns)
        sw = ["ip", "-n", self.switch_ns]
        sh(*sw, "link", "set", "lo", "up")
        sh(*sw, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        # no multicast snooping / ageing surprises: a dumb switch, like the original lab's
        sh(*sw, "link", "set", "br0", "up")
        for i, h in enumerate(self.hosts):
            sh("ip", "netns", "add", h.ns)
            hn = ["ip", "-n", h.ns]
            # create the pair directly in its two namespaces: nothing ever appears in the root ns
            sh("ip", "link", "add", "eth0", "netns", h.ns, "address", h.mac,
               "type", "veth", "peer", "name", f"p{i}-{h.role[:8]}", "netns", self.switch_ns)
            sh(*sw, "link", "set", f"p{i}-{h.role[:8]}", "master", "br0", "up")
            sh(*hn, "link", "set", "lo", "up")
            for ip in h.ips:
                sh(*hn, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh(*hn, "link", "set", "eth0", "up")
            if h is not self.gateway:
                sh(*hn, "route", "add", "default", "via", self.gateway.ip)
                # `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf:
                # names (www.lab.nta) resolve through the victim's dnsmasq, like a real client
                os.makedirs(f"/etc/netns/{h.ns}", exist_ok=True)
                with open(f"/etc/netns/{h.ns}/resolv.conf", "w") as f:
                    f.write(f"nameserver {self.victim.ip}\noptions timeout:2 attempts:2\n")
            # IPv6 off: keeps captures to the IPv4 traffic the labels describe (no NDP/MLD chatter)
            sh("ip", "netns", "exec", h.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        self.wait_links()

    def wait_links(self, timeout=10):
        """veths take a moment to come up; ping the gateway from every host before going on."""
        deadline = time.time() + timeout
        for h in self.hosts:
            if h is self.gateway:
                continue
            while sh(*h.cmd("ping", "-c1", "-W1", self.gateway.ip), check=False).returncode != 0:
                if time.time() > deadline:
                    raise RuntimeError(f"{h} cannot reach the gateway")
                time.sleep(0.2)

    def flush_neighbours(self):
        """Forget ARP entries so each capture starts with the ARP exchange (and ARP poisoning
        from a previous variation does not linger)."""
        for h in self.hosts:
            sh("ip", "-n", h.ns, "neigh", "flush", "all", check=False)

    # ---- processes --------------------------------------------------------------------------
    def spawn(self, host, argv, log=None, **kw):
        """Start argv inside host's namespace in its own process group (so it and its children
        can be signalled together) and remember it for cleanup."""
        out = open(log, "ab") if log else subprocess.DEVNULL
        p = subprocess.Popen(host.cmd(*argv), stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        if log:
            out.close()
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGINT, timeout=5):
        """Signal a process group, escalate to SIGKILL; returns the exit code."""
        if p.poll() is None:
            for s in (sig, signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(p.pid, s)
                except ProcessLookupError:
                    break
                try:
                    p.wait(timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if p in self.procs:
            self.procs.remove(p)
        return p.returncode

    def cleanup(self, stale=False):
        """End our processes, then anything still inside our namespaces, then the namespaces.
        With stale=True this only removes leftovers of an earlier run with the same prefix."""
        for p in list(self.procs):
            self.stop(p, signal.SIGTERM, timeout=2)
        existing = set(sh("ip", "netns", "list", check=False).stdout.split())
        for ns in self.namespaces():
            if ns not in existing:
                continue
            if stale:
                print(f"lab: removing stale namespace {ns}", flush=True)
            pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", ns, check=False)
        for ns in self.namespaces():
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
        try:
            os.rmdir("/etc/netns")  # only if empty, i.e. nothing but ours was ever there
        except OSError:
            pass
