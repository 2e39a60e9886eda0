"""Real services on the victim: nginx (web site with login pages), OpenSSH (password logins),
dnsmasq (the lab zone) and iodined (DNS tunnel end point). Each runs inside the victim namespace
from its own config, pid and log files under a temporary directory, so nothing system-wide is
reconfigured except the lab's test user (sshd needs a real account to check passwords against).
"""
import os
import random
import signal
import subprocess
import time

from netns import sh

NGINX_CONF = """\
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {d}/nginx-access.log;
    client_body_temp_path {d}/nginx-tmp/body;
    proxy_temp_path {d}/nginx-tmp/proxy;
    fastcgi_temp_path {d}/nginx-tmp/fastcgi;
    uwsgi_temp_path {d}/nginx-tmp/uwsgi;
    scgi_temp_path {d}/nginx-tmp/scgi;
    types {{ text/html html; text/css css; application/javascript js; image/png png;
             application/octet-stream bin; }}
    server {{
        listen {ip}:80 backlog=4096;
        server_name www.{zone};
        root {d}/www;
        # Login paths answer like a site rejecting bad credentials: brute-force and benign
        # typos both see 401/403, a correct basic-auth login to /admin sees 200.
        location = /login {{ return 401; }}
        location = /wp-login.php {{ return 403; }}
        location /admin {{ auth_basic "lab"; auth_basic_user_file {d}/htpasswd; }}
        location /api/ {{ default_type application/json; return 200 '{{"ok":true}}'; }}
        # slowhttptest -B posts a slow body here: nginx must read the whole body before it
        # proxies the request, so every slow POST holds a connection (a bare `return` would not)
        location = /form {{ client_max_body_size 10m; proxy_pass http://127.0.0.1:8081; }}
    }}
    server {{ listen 127.0.0.1:8081; location / {{ return 200 "thanks\n"; }} }}
}}
"""

SSHD_CONF = """\
{ports}
ListenAddress {ip}
HostKey {d}/ssh_host_ed25519_key
PidFile {d}/sshd.pid
PasswordAuthentication yes
KbdInteractiveAuthentication no
# UsePAM off: sshd checks /etc/shadow itself, no PAM session modules that expect systemd
UsePAM no
PermitRootLogin no
AllowUsers {user}
# hydra opens many connections at once; the default 10:30:100 would refuse most of them,
# which is also realistic, so keep it moderate rather than unlimited
MaxStartups 60:30:120
MaxAuthTries {max_auth_tries}
LoginGraceTime 20
UseDNS no
Subsystem sftp internal-sftp
"""

PAGES = ["index.html", "about.html", "contact.html", "products.html", "blog.html"] + \
        [f"news/{i}.html" for i in range(1, 21)] + [f"docs/page{i}.html" for i in range(1, 11)]
ASSETS = ["static/app.js", "static/site.css"] + [f"img/photo{i}.png" for i in range(1, 9)]
LARGE = {"files/report.bin": 1 << 20, "files/dataset.bin": 5 << 20, "files/video.bin": 12 << 20}

# Ordinary names in the lab zone; benign DNS picks among them (plus a few that do not exist).
HOSTNAMES = ["www", "mail", "smtp", "imap", "ns1", "ns2", "vpn", "intranet", "wiki", "git", "ci",
             "jira", "files", "backup", "db", "db-replica", "cache", "api", "cdn", "static", "auth",
             "sso", "ldap", "printer", "nas", "monitor", "grafana", "logs", "proxy", "shop"]


class Services:
    def __init__(self, lab, workdir, cfg):
        self.lab, self.d, self.cfg = lab, workdir, cfg
        self.zone = cfg.get("zone", "lab.nta")
        self.tunnel_domain = cfg.get("tunnel_domain", f"t.{self.zone}")
        self.tunnel_password = cfg.get("tunnel_password", "labtunnel")
        self.tunnel_net = cfg.get("tunnel_net", "10.78.0.1/27")
        self.user = cfg.get("ssh_user", "ntalab")
        self.password = cfg.get("ssh_password", "Winter2024!")
        self.ssh_ports = cfg.get("ssh_ports", [22])
        self.web_user, self.web_password = "admin", cfg.get("web_password", "s3cret")
        self.hosts_map = {}
        self.procs = {}

    # ---- set-up helpers -----------------------------------------------------------------------
    def ensure_user(self):
        """The one system-wide change: a local account for sshd password logins (idempotent)."""
        if sh("id", self.user, check=False).returncode != 0:
            sh("useradd", "-m", "-s", "/bin/bash", self.user)
        subprocess.run(["chpasswd"], input=f"{self.user}:{self.password}\n", text=True, check=True)
        home = f"/home/{self.user}"
        os.makedirs(f"{home}/work", exist_ok=True)
        with open(f"{home}/work/notes.txt", "w") as f:
            f.write("lab notes\n" * 200)
        with open(f"{home}/work/data.bin", "wb") as f:
            f.write(os.urandom(512 * 1024))  # what benign scp downloads
        sh("chown", "-R", f"{self.user}:{self.user}", f"{home}/work")

    def write_site(self, rng):
        www = f"{self.d}/www"
        for p in PAGES:
            os.makedirs(os.path.dirname(f"{www}/{p}"), exist_ok=True)
            body = "".join(f"<p>{rng.random():.12f} lorem ipsum dolor sit amet</p>\n"
                           for _ in range(rng.randint(20, 400)))
            with open(f"{www}/{p}", "w") as f:
                f.write(f"<html><head><title>{p}</title></head><body>{body}</body></html>\n")
        for p in ASSETS:
            os.makedirs(os.path.dirname(f"{www}/{p}"), exist_ok=True)
            with open(f"{www}/{p}", "wb") as f:
                f.write(os.urandom(rng.randint(2_000, 200_000)))
        for p, size in LARGE.items():
            os.makedirs(os.path.dirname(f"{www}/{p}"), exist_ok=True)
            with open(f"{www}/{p}", "wb") as f:
                f.write(os.urandom(size))
        pw = sh("openssl", "passwd", "-apr1", self.web_password).stdout.strip()
        with open(f"{self.d}/htpasswd", "w") as f:
            f.write(f"{self.web_user}:{pw}\n")

    def write_zone(self):
        """dnsmasq answers authoritatively (local=) for the lab zone from a hosts file, with MX
        and TXT records, and forwards the tunnel sub-domain to iodined on the second address
        so a tunnel can go either straight to iodined or through the resolver."""
        v = self.lab.victim
        base = self.lab.subnet
        for i, name in enumerate(HOSTNAMES):
            self.hosts_map[f"{name}.{self.zone}"] = f"{base}.{100 + i}"
        self.hosts_map[f"www.{self.zone}"] = v.ip
        self.hosts_map[f"ns1.{self.zone}"] = v.ip
        self.hosts_map[f"ns2.{self.zone}"] = v.extra_ips[0]
        with open(f"{self.d}/lab.hosts", "w") as f:
            for name, ip in self.hosts_map.items():
                f.write(f"{ip} {name}\n")
        conf = [
            "no-resolv", "no-hosts", "bind-interfaces", "no-daemon", "log-queries",
            f"listen-address={v.ip}", f"addn-hosts={self.d}/lab.hosts",
            f"local=/{self.zone}/", f"domain={self.zone}",
            f"server=/{self.tunnel_domain}/{v.extra_ips[0]}",
            f"mx-host={self.zone},mail.{self.zone},10",
            f'txt-record={self.zone},"v=spf1 mx -all"',
            f"pid-file={self.d}/dnsmasq.pid", f"log-facility={self.d}/dnsmasq.log",
            "user=root", "cache-size=1000",
        ]
        with open(f"{self.d}/dnsmasq.conf", "w") as f:
            f.write("\n".join(conf) + "\n")

    # ---- start / stop -------------------------------------------------------------------------
    def start(self, seed=0):
        rng = random.Random(seed)
        v, d = self.lab.victim, self.d
        os.chmod(d, 0o755)  # nginx workers run as nobody and must read the site below it
        os.makedirs(f"{d}/nginx-tmp", exist_ok=True)
        self.ensure_user()
        self.write_site(rng)
        self.write_zone()
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(NGINX_CONF.format(d=d, ip=v.ip, zone=self.zone))
        with open(f"{d}/sshd_config", "w") as f:
            # sshd also listens on non-standard ports: guessing against them must be caught by
            # what the service speaks, not by its port
            ports = "\n".join(f"Port {p}" for p in self.ssh_ports)
            f.write(SSHD_CONF.format(d=d, ip=v.ip, user=self.user, ports=ports,
                                       max_auth_tries=self.cfg.get("ssh_max_auth_tries", 6)))
        if not os.path.exists(f"{d}/ssh_host_ed25519_key"):
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/ssh_host_ed25519_key")
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory

        L = self.lab
        self.procs["nginx"] = L.spawn(v, ["nginx", "-p", d, "-e", f"{d}/nginx-error.log",
                                          "-c", f"{d}/nginx.conf", "-g", "daemon off;"],
                                      log=f"{d}/nginx.out")
        self.procs["sshd"] = L.spawn(v, ["/usr/sbin/sshd", "-D", "-f", f"{d}/sshd_config",
                                         "-E", f"{d}/sshd.log"], log=f"{d}/sshd.out")
        self.procs["dnsmasq"] = L.spawn(v, ["dnsmasq", f"--conf-file={d}/dnsmasq.conf"],
                                        log=f"{d}/dnsmasq.out")
        # -c: accept a session's queries from changing source addresses (they arrive from the
        # resolver when the tunnel goes through dnsmasq); -f foreground; -D: log a little.
        self.procs["iodined"] = L.spawn(v, ["iodined", "-f", "-c", "-D", "-l", v.extra_ips[0],
                                            "-P", self.tunnel_password, self.tunnel_net,
                                            self.tunnel_domain], log=f"{d}/iodined.log")
        self.wait_ready()

    def wait_ready(self, timeout=15):
        v = self.lab.victim
        checks = {
            "nginx": lambda: self._tcp_ok(v, 80),
            "sshd": lambda: self._tcp_ok(v, 22),
            "dnsmasq": lambda: sh(*self.lab.clients[0].cmd(
                "dig", "+short", "+time=1", "+tries=1", f"@{v.ip}", f"www.{self.zone}"),
                check=False).stdout.strip() == v.ip,
            "iodined": lambda: "dns0" in sh("ip", "-n", v.ns, "link", check=False).stdout,
        }
        deadline = time.time() + timeout
        for name, ok in checks.items():
            while not ok():
                p = self.procs[name]
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited ({p.returncode}); see logs in {self.d}")
                if time.time() > deadline:
                    raise RuntimeError(f"{name} not ready after {timeout}s; see logs in {self.d}")
                time.sleep(0.3)

    def _tcp_ok(self, host, port):
        probe = f"import socket; socket.create_connection(('{host.ip}', {port}), 1).close()"
        return sh(*self.lab.clients[0].cmd("python3", "-c", probe), check=False).returncode == 0

    def stop(self):
        for name, p in self.procs.items():
            self.lab.stop(p, signal.SIGTERM)
        self.procs.clear()
